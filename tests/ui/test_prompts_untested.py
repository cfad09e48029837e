"""Prompts page, "Use it": a program never evaluated on its whole test set (here a baseline whose provider refused
every call) shows the same warning as ``python -m core export``, registers only once confirmed, and is recorded
untested on the model version."""

from core.lm.models import openai_compatible
from core.ship.register import MODEL_URI_TAG, TESTED_TAG, UNTESTED_TAG
from core.tasks import SampleSpec, TaskRef
from tests.stub_server import Faults
from tests.ui.conftest import assert_clean, open_page


def test_registering_an_untested_program_warns_and_asks_first(empty, stub):
    from core.evaluation.baseline import run_baselines
    from core.tracking.store import RunStore

    store = RunStore(empty)
    stub.faults = Faults(echo_key_401=True)
    run_baselines(store, TaskRef(), SampleSpec(2, 0, 3, seed=1),
                  [openai_compatible("refused", "stub-small", stub.base_url, num_retries=0)], threads=1, cache=False)
    run_id = store.list_runs(kind="baseline").iloc[0]["run_id"]
    assert store.get_run(run_id).info.status == "FAILED"

    at = open_page("pages/prompts.py")
    assert_clean(at)
    warning = " ".join(str(w.value) for w in at.warning)
    assert f"Program B was never tested: the evaluation run {run_id} failed" in warning
    assert at.button(key="prompts.ship").disabled  # not before the tick
    at.checkbox(key=f"prompts.untested.{run_id}").check().run()
    at = at.button(key="prompts.ship").click().run()
    assert_clean(at)
    uri = store.get_run(run_id).data.tags[MODEL_URI_TAG]
    name, version = uri.removeprefix("models:/").rsplit("/", 1)
    mv = store.client.get_model_version(name, version)
    assert mv.tags[TESTED_TAG] == "false" and "failed" in mv.tags[UNTESTED_TAG]
