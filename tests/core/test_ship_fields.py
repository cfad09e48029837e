"""A program of a task beyond classification ships too: the shipped ``extract`` task (one input, three text outputs)
exported as a registered MLflow model whose signature names every field, served against the stub: every output of
each row read as the evaluation read it, a row the model could not answer empty with its reason, and a dead server
the same batch error as classification's."""

import json

import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from core.lm.models import openai_compatible
from core.ship.register import export_model, load_snippet, serve_command
from core.tasks import SampleSpec, TaskRef
from tests.stub_server import Faults
from tests.stub_tasks import task_responder, task_stub
from tests.stub_text import last_user_text

OUTPUTS = ["drug", "dose", "condition"]
UNREADABLE = "This sentence gets an answer without any field."


def unreadable_or_task(model, messages, body):
    """The shipped tasks' stub, but prose without a field for the one unreadable sentence."""
    if UNREADABLE in last_user_text(messages):
        return "I would rather not say."
    return task_responder(model, messages, body)


def test_an_extract_program_ships_with_every_field_and_serves_them(settings, store):
    import mlflow

    from core.evaluation.baseline import run_baselines

    with task_stub() as stub:
        small = openai_compatible("small", "stub-small", stub.base_url, num_retries=0)
        run_baselines(store, TaskRef(kind="extract"), SampleSpec(2, 0, 3, seed=1), [small], threads=2, cache=False)
        run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
        records = store.read_csv(run_id, "records.csv")
        shipped = export_model(store, run_id, name="extract-small")
        assert (shipped.inputs, shipped.outputs) == (("sentence",), tuple(OUTPUTS))

        mlflow.set_tracking_uri(settings.tracking_uri)
        model = mlflow.pyfunc.load_model(shipped.uri)
        assert model.metadata.get_input_schema().input_names() == ["sentence"]
        assert model.metadata.get_output_schema().input_names() == [*OUTPUTS, "error"]

        sentences = records["text"].tolist()
        out = model.predict(pd.DataFrame({"sentence": sentences}))
        assert list(out.columns) == [*OUTPUTS, "error"] and out["error"].isna().all()
        # Every output, as the baseline's evaluation read it from the same model.
        assert out[OUTPUTS].to_dict("records") == [json.loads(p) for p in records["predicted"]]
        assert model.predict([{"sentence": sentences[0]}])[OUTPUTS].iloc[0].tolist() == out[OUTPUTS].iloc[0].tolist()

        stub.responder = unreadable_or_task  # one row of two unanswerable: the batch answers, that row says why
        out = model.predict(pd.DataFrame({"sentence": [sentences[0], UNREADABLE]}))
        assert out["error"].isna().iloc[0] and out.loc[1, OUTPUTS].isna().all()
        assert out["error"].iloc[1].startswith("parse: could not parse the answer"), out["error"].iloc[1]
        assert "rather not say" in out["error"].iloc[1]

        snippet = load_snippet(shipped, settings.tracking_uri)
        assert '"sentence": ' in snippet and "drug, dose, condition and error" in snippet
        stub.reset()
        exec(compile(snippet, "use-it snippet", "exec"), {})  # the page's snippet runs as shown
        assert len(stub.chat_requests()) == 1
        assert '"dataframe_records": [{"sentence": ' in serve_command(shipped, settings.tracking_uri)

        # The server dies: every row fails as unreachable, and the batch is an error, as for classification.
        stub.faults = Faults(die_after=stub.chat_calls)
        with pytest.raises(MlflowException, match=r"all 2 rows failed \(unreachable 2\)") as err:
            model.predict(pd.DataFrame({"sentence": sentences[:2]}))
        assert stub.dead and err.value.get_http_status_code() == 503 and "base URL" in err.value.message
