"""Ship it: an optimized program exported as a registered MLflow model that loads, predicts and serves over HTTP."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from core.config.errors import ConfigError
from core.lm.models import ModelSpec, openai_compatible
from core.ship.register import MODEL_URI_TAG, export_model, load_snippet, serve_command, shipped_of
from core.tasks import SampleSpec, TaskRef
from tests.ports import free_port, invoke_served
from tests.scenario import write_csv
from tests.stub_server import (
    Faults,
    StubError,
    gepa_responder,
    hinted_label,
    keyword_classifier,
    keyword_label,
    last_user_text,
)

SECRET = "sk-planted-ship-secret-9f8e7d"
TEXTS = ["Patients in cohort 3 were randomized to drug B or placebo.", "We conclude that drug A helps group 2."]


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def test_optimized_program_ships_as_a_linked_model_that_predicts_through_the_stub(settings, store, ref, stub, tmp_path):
    import mlflow

    from core.optimize import OptimizeConfig, run_optimization

    stub.responder = gepa_responder
    student = openai_compatible("stub-small", "stub-small", stub.base_url)
    teacher = openai_compatible("stub-large", "stub-large", stub.base_url)
    config = OptimizeConfig(task_ref=ref, sample=SampleSpec(3, 2, 4, seed=3), student=student, reflection=teacher,
                            auto=None, max_metric_calls=30, threads=2, reflection_minibatch_size=3, cache=False)
    res = run_optimization(config, store, log_dir=tmp_path / "gepa")
    assert res.prompt_uri, res.error
    status = store.get_run(res.run_id).info.status

    shipped = export_model(store, res.run_id)
    assert shipped.uri == f"models:/scenario-stub-small-gepa/{shipped.version}" and shipped.version == "1"
    mv = store.client.get_model_version(shipped.name, shipped.version)
    assert mv.tags["studio.optimization_run_id"] == res.run_id and mv.tags["studio.prompt_uri"] == res.prompt_uri
    assert res.prompt_uri in mv.description
    assert store.get_run(res.run_id).data.tags[MODEL_URI_TAG] == shipped.uri
    assert store.get_run(res.run_id).info.status == status  # logging the model did not reopen the run
    assert shipped_of(store, res.run_id) == shipped
    again = export_model(store, res.run_id)
    assert again.version == "2"  # a new version of the same model
    evaluated = export_model(store, res.optimized_eval_run_id)  # what the Prompts page ships: program B
    assert (evaluated.name, evaluated.optimization_run_id, evaluated.prompt_uri) == (
        "scenario-stub-small-optimized", res.run_id, res.prompt_uri)

    optimized = json.loads(store.read_text(res.run_id, "optimized_program.json"))["instruction"]
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(shipped.uri)
    stub.reset()
    out = model.predict(pd.DataFrame({shipped.input_field: TEXTS}))
    # the stub's student answers by the hints in the instruction it is sent: the optimized one's answers
    assert out[shipped.output_field].tolist() == [hinted_label(optimized, t) for t in TEXTS]
    assert out["error"].isna().all()
    sent = [r["body"] for r in stub.chat_requests()]
    assert len(sent) == 2 and {b["model"] for b in sent} == {"stub-small"}
    flat = " ".join(optimized.split())  # the adapter indents the instruction's lines
    assert all(flat in " ".join(b["messages"][0]["content"].split()) for b in sent)  # the optimized one runs

    snippet = load_snippet(shipped, settings.tracking_uri)
    assert shipped.uri in snippet and "load_model" in snippet
    stub.reset()
    exec(compile(snippet, "use-it snippet", "exec"), {})  # the page's snippet runs as shown
    assert len(stub.chat_requests()) == 1
    assert "--env-manager local" in serve_command(shipped, settings.tracking_uri)


def test_a_failed_text_is_an_empty_label_with_its_reason(settings, store, ref, stub):
    import mlflow

    from core.evaluation.baseline import run_baselines

    run_baselines(store, ref, SampleSpec(2, 0, 3), [openai_compatible("small", "stub-small", stub.base_url,
                                                                      num_retries=0)])
    run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
    shipped = export_model(store, run_id, name="baseline-small")
    assert shipped.optimization_run_id is None and shipped.prompt_uri is None
    model = mlflow.pyfunc.load_model(shipped.uri)
    stub.responder = lambda model, messages, body: (StubError(500) if "drug A" in last_user_text(messages)
                                                    else keyword_classifier(model, messages, body))
    out = model.predict(pd.DataFrame({shipped.input_field: TEXTS}))  # one text of two fails: the batch answers
    assert out[shipped.output_field].iloc[0] == keyword_label(TEXTS[0]) and out[shipped.output_field].isna().iloc[1]
    assert out["error"].isna().iloc[0] and out["error"].iloc[1].startswith("server_error: ")
    stub.faults = Faults(server_error=1.0)  # every text failed: an error, never a table of errors
    with pytest.raises(MlflowException, match="all 1 texts failed"):
        model.predict(pd.DataFrame({shipped.input_field: TEXTS[:1]}))


def test_export_from_the_cli_and_bad_exports_say_what_to_do(store, ref, stub, capsys):
    from core.cli.main import main
    from core.evaluation.baseline import run_baselines

    run_baselines(store, ref, SampleSpec(2, 0, 2), [openai_compatible("s", "stub-small", stub.base_url)])
    run_id = store.list_runs().iloc[0]["run_id"]
    assert main(["export", run_id, "--name", "cli-model"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Registered models:/cli-model/1 (run {run_id})")
    assert 'load_model("models:/cli-model/1")' in out and "mlflow models serve -m models:/cli-model/1" in out
    assert main(["export", "no-such-run"]) == 2
    assert "No run 'no-such-run'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="not a registry name") as bad_name:
        export_model(store, run_id, name="no spaces please")
    assert bad_name.value.hint
    opt = store.start_run("optimization", "scenario", run_name="never finished")
    with pytest.raises(ConfigError, match="no program to ship") as empty:
        export_model(store, opt)
    assert "finished" in empty.value.hint


@pytest.mark.slow
def test_the_exported_model_serves_predictions_over_http(settings, store, ref, stub, monkeypatch, tmp_path):
    """``mlflow models serve --env-manager local`` on a free loopback port answers one posted request; the
    student's key is read from the server's environment and is in no file of the model."""
    from core.evaluation.baseline import run_baselines

    mlflow_cli = shutil.which("mlflow", path=os.path.dirname(sys.executable))
    if mlflow_cli is None:
        pytest.skip("the mlflow command is not installed beside this Python")
    monkeypatch.setenv("STUB_API_KEY", SECRET)
    stub.api_key = SECRET
    spec = ModelSpec("keyed", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_API_KEY")
    run_baselines(store, ref, SampleSpec(2, 0, 2), [spec])
    shipped = export_model(store, store.list_runs(kind="baseline").iloc[0]["run_id"])
    model_dir = tmp_path / "served"
    store.download(shipped.run_id, "model", tmp_path)
    shutil.move(tmp_path / "model", model_dir)
    leaked = [p for p in model_dir.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert not leaked

    port = free_port()
    env = {**os.environ, "STUB_API_KEY": SECRET, "MLFLOW_TRACKING_URI": settings.tracking_uri,
           "PATH": os.pathsep.join([os.path.dirname(mlflow_cli), os.environ.get("PATH", "")])}  # as in a venv
    proc = subprocess.Popen([mlflow_cli, "models", "serve", "-m", shipped.uri, "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answer = invoke_served(port, proc, [{shipped.input_field: TEXTS[0]}], 90)
        assert answer["predictions"] == [{shipped.output_field: keyword_label(TEXTS[0]), "error": None}]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
