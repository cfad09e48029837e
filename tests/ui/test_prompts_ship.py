"""Prompts page, "Use it": program B registered as an MLflow model from the page, with how to load and serve it."""

from core.lm.models import openai_compatible
from core.ship.register import MODEL_URI_TAG
from core.tasks import SampleSpec, TaskRef
from tests.ui.conftest import assert_clean, open_page, texts


def test_prompts_ships_program_b_as_a_registered_model(empty, stub):
    from core.evaluation.baseline import run_baselines
    from core.tracking.store import RunStore

    store = RunStore(empty)
    run_baselines(store, TaskRef(), SampleSpec(2, 0, 3, seed=1),
                  [openai_compatible("stub-small", "stub-small", stub.base_url)], threads=2, cache=False)
    run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
    at = open_page("pages/prompts.py")
    assert_clean(at)
    button = at.button(key="prompts.ship")
    assert button.label == "Register as an MLflow model"
    at = button.click().run()
    assert_clean(at)
    uri = store.get_run(run_id).data.tags[MODEL_URI_TAG]
    assert uri == "models:/demo-stub-small-original/1"
    assert f"Registered as `{uri}`." in texts(at, "markdown")
    code = "\n".join(texts(at, "code"))
    assert f'mlflow.pyfunc.load_model("{uri}")' in code and "mlflow models serve -m " in code
    assert "--env-manager local" in code and empty.tracking_uri in code
    at = open_page("pages/prompts.py")  # a later visit shows it, and offers a new version
    assert at.button(key="prompts.ship").label == "Register a new model version"
    assert f"Registered as `{uri}`." in texts(at, "markdown")
