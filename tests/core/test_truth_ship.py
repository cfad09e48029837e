"""What is registered and served is what was measured: the registered prompt holds the whole program (instruction
and demos) and the alias ``best`` moves only to a better measured one; the served model reads answers exactly as
the evaluation does and names failures with the evaluation's kinds; a batch whose every text failed is an error;
an untested program (a cancelled optimization) is refused by ``export`` unless allowed, and then recorded untested.
All over HTTP against the stub server, with a real MLflow SQLite store."""

import json
import threading

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from core.lm.models import ModelSpec, openai_compatible
from core.optimize import run_optimization
from core.optimize.registered import MadeBy, register_prompt
from core.program.program import program_from_dict
from core.ship.register import TESTED_TAG, UNTESTED_TAG, export_model
from core.tasks import SampleSpec, TaskRef
from core.tracking.store import RunStore
from tests.core.test_optimizers import make_config, responder
from tests.scenario import write_csv
from tests.stub_server import Faults, chat_answer, field_value, keyword_label, last_user_text

SECRET = "sk-h3-truth-ship-5e4d"  # a key the stub echoes in its 401


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def load(uri):
    import mlflow

    return mlflow.pyfunc.load_model(uri)


def test_a_fewshot_program_is_registered_with_its_demos_and_serves_the_labels_it_was_measured_with(
        settings, ref, stub):
    import mlflow

    stub.responder = responder  # the student learns a label from a demo of it: the demos make the gain
    store = RunStore(settings)
    res = run_optimization(make_config(ref, stub.base_url, "fewshot", teacher=False), store,
                           log_dir=settings.jobs_dir / "fs")
    assert res.status == "succeeded" and res.optimized_accuracy > res.original_accuracy, res.error
    program, task = program_from_dict(store.read_json(res.run_id, "optimized_program.json"))
    demos = [dict(d) for d in program.demos]
    assert demos

    mlflow.set_tracking_uri(settings.tracking_uri)
    prompt = mlflow.genai.load_prompt(res.prompt_uri)
    assert json.loads(prompt.tags["demos"]) == demos and prompt.tags["n_demos"] == str(len(demos))
    chat = json.dumps(prompt.template)
    assert all(d[task.input_field] in chat and d[task.output_field] in chat for d in demos)
    assert prompt.variables == {task.input_field}  # the text to classify is the one variable
    assert float(prompt.tags["test_accuracy"]) == pytest.approx(res.optimized_accuracy)
    assert prompt.response_format["properties"][task.output_field]["enum"] == list(task.labels)
    best = f"prompts:/{prompt.name}@best"
    assert mlflow.genai.load_prompt(best, cache_ttl_seconds=0).version == prompt.version

    # The served model predicts exactly what its evaluation recorded, text by text.
    shipped = export_model(store, res.run_id)
    records = store.read_csv(res.optimized_eval_run_id, "records.csv")
    out = load(shipped.uri).predict(pd.DataFrame({shipped.input_field: records["text"].tolist()}))
    assert out[shipped.output_field].tolist() == records["predicted"].tolist()
    assert out["error"].isna().all()
    mv = store.client.get_model_version(shipped.name, shipped.version)
    assert mv.tags[TESTED_TAG] == "true" and UNTESTED_TAG not in mv.tags

    # The alias moves only to a program measured strictly better: not a tie, not a worse one.
    def version_at(accuracy):
        student = make_config(ref, stub.base_url, "fewshot").student
        uri = register_prompt(store, task, student, program, accuracy, MadeBy(res.run_id))
        return uri.rsplit("/", 1)[1]

    for accuracy in (res.optimized_accuracy, res.optimized_accuracy - 0.1, None):
        version_at(accuracy)
        assert mlflow.genai.load_prompt(best, cache_ttl_seconds=0).version == prompt.version, accuracy
    better = version_at(res.optimized_accuracy + 0.01)
    assert str(mlflow.genai.load_prompt(best, cache_ttl_seconds=0).version) == better


def lowercase(model, messages, body):
    """A model that answers the keyword label in lower case ("methods" for METHODS), or nothing readable for a
    text that asks for it: DSPy's Literal check refuses both."""
    sentence = field_value(last_user_text(messages), "description")
    label = "I am not sure." if "unreadable" in sentence else keyword_label(sentence).lower()
    return json.dumps({"target": label}) if body.get("response_format") else chat_answer("target", label)


def test_the_served_model_reads_answers_and_names_failures_as_the_evaluation_does(store, ref, stub):
    from core.evaluation.baseline import run_baselines

    stub.responder = lowercase
    run_baselines(store, ref, SampleSpec(2, 0, 4, seed=1), [openai_compatible("low", "stub-small", stub.base_url)],
                  threads=2, cache=False)
    run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
    records = store.read_csv(run_id, "records.csv")
    assert records["predicted"].notna().all() and (records["outcome"] == "correct").all()  # "methods" is METHODS
    shipped = export_model(store, run_id)
    model = load(shipped.uri)
    texts = [*records["text"].tolist(), "An unreadable sentence."]
    out = model.predict(pd.DataFrame({shipped.input_field: texts}))
    assert out[shipped.output_field].tolist()[:-1] == records["predicted"].tolist()
    assert out["error"].iloc[:-1].isna().all()
    # The evaluation's word for an answer that names no label: parse (never "other").
    assert out[shipped.output_field].isna().iloc[-1]
    assert out["error"].iloc[-1].startswith("parse: could not parse the answer"), out["error"].iloc[-1]


def test_a_batch_whose_every_text_failed_is_an_error_status_without_the_key(store, ref, stub, monkeypatch):
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    from core.evaluation.baseline import run_baselines

    monkeypatch.setenv("H3_STUB_KEY", SECRET)
    spec = ModelSpec("keyed", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="H3_STUB_KEY",
                     num_retries=0)
    run_baselines(store, ref, SampleSpec(2, 0, 2, seed=1), [spec], threads=1, cache=False)
    shipped = export_model(store, store.list_runs(kind="baseline").iloc[0]["run_id"])
    model = load(shipped.uri)
    stub.faults = Faults(echo_key_401=True)  # the key is wrong: every call is refused, its 401 repeats the key
    texts = ["We conclude that drug A helps group 2.", "Disease B remains a burden in region 4."]
    with pytest.raises(MlflowException, match=r"all 2 texts failed \(auth 2\)") as err:
        model.predict(pd.DataFrame({shipped.input_field: texts}))
    assert err.value.get_http_status_code() >= 400 and SECRET not in err.value.message
    assert "key" in err.value.message.lower()  # the hint: check the key variable

    # As `mlflow models serve` answers it: an error status, not a 200 with an error column.
    client = TestClient(scoring_server.init(model))
    reply = client.post("/invocations", json={"dataframe_records": [{shipped.input_field: t} for t in texts]})
    assert reply.status_code == 500 and "auth" in reply.text and SECRET not in reply.text


def _cancelled_fewshot(settings, ref, stub):
    """A few-shot optimization cancelled after its second candidate: best program kept, never tested."""
    stub.responder = responder
    stop = threading.Event()
    res = run_optimization(make_config(ref, stub.base_url, "fewshot", auto=None, max_full_evals=6),
                           RunStore(settings), log_dir=settings.jobs_dir / "cancel",
                           progress=lambda p: stop.set() if p.get("candidates", 0) >= 2 else None,
                           should_stop=stop.is_set)
    assert res.status == "cancelled", res.error
    return res.run_id


def test_exporting_a_cancelled_optimization_is_refused_unless_allowed_and_then_recorded(settings, ref, stub, capsys):
    from core.cli.main import main

    run_id = _cancelled_fewshot(settings, ref, stub)
    store = RunStore(settings)
    assert main(["export", run_id, "--name", "cancelled-fs"]) == 2
    err = capsys.readouterr().err
    assert f"Not exported: optimization {run_id} was cancelled (cancelled)" in err
    assert "never evaluated on the test set" in err and f"python -m core finish {run_id}" in err
    assert "--allow-untested" in err
    assert store.client.search_model_versions("name='cancelled-fs'") == []  # nothing registered

    assert main(["export", run_id, "--name", "cancelled-fs", "--allow-untested"]) == 0
    captured = capsys.readouterr()
    assert "warning: models:/cancelled-fs/1 is UNTESTED" in captured.err
    assert captured.out.startswith("Registered models:/cancelled-fs/1")
    mv = store.client.get_model_version("cancelled-fs", "1")
    assert mv.tags[TESTED_TAG] == "false" and "was cancelled" in mv.tags[UNTESTED_TAG]
    assert mv.description.startswith("UNTESTED: ")
