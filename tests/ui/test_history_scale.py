"""Program identity on the pages (Predict and CoT runs of one model kept apart) and History over many runs."""

from __future__ import annotations

import time
import uuid

from core.tracking.store import RunStore
from tests.ui.conftest import assert_clean, open_page, texts


def _baseline(store: RunStore, model: str, module: str, accuracy: float) -> str:
    rid = store.start_run("baseline", "demo", run_name=f"{model} · original",
                          tags={"studio.model": model, "studio.program": "original", "studio.module": module})
    store.log_metrics(rid, {"accuracy": accuracy, "accuracy_ci_low": accuracy - 0.1, "accuracy_ci_high": accuracy + 0.1,
                            "n": 20, "failed": 0, "failure_rate": 0.0, "cost_per_1k": 0.1, "complete": 1.0})
    store.end_run(rid)
    return rid


def test_predict_and_cot_runs_of_one_model_are_shown_apart(empty):
    store = RunStore(empty)
    _baseline(store, "m", "predict", 0.62)
    _baseline(store, "m", "cot", 0.0)
    at = open_page("pages/history.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert sorted(table["module"]) == ["CoT", "Predict"]
    at.multiselect(key="history.modules").select("cot").run()
    assert "1 of 2 runs" in texts(at, "caption") and list(at.dataframe[0].value["module"]) == ["CoT"]

    at = open_page("pages/baselines.py")
    assert_clean(at)
    spec = at.get("plotly_chart")[0].proto.spec
    assert "m · Predict" in spec and "m · CoT" in spec  # the 0 % CoT run does not replace the Predict bar
    assert sorted(next(f.value for f in at.dataframe if "module" in f.value)["module"]) == ["CoT", "Predict"]


def test_history_lists_every_run_a_page_at_a_time(empty):
    """501 runs (written in one transaction through MLflow's models, as bench/dashboard.py does): two pages."""
    from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
    from sqlalchemy import insert

    store = RunStore(empty)
    exp_id, now = int(store.experiment_id("demo")), int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(501)]
    with store.client._tracking_client.store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun.__table__), [
            dict(run_uuid=rid, name=f"run {i}", source_type="UNKNOWN", status="FINISHED", start_time=now - i * 1000,
                 end_time=now - i * 1000 + 10, lifecycle_stage="active", experiment_id=exp_id, artifact_uri="")
            for i, rid in enumerate(ids)])
        session.execute(insert(SqlTag.__table__), [dict(key=k, value=v, run_uuid=rid) for rid in ids
                                                   for k, v in (("studio.kind", "baseline"), ("studio.task", "demo"))])
    at = open_page("pages/history.py")
    assert_clean(at)
    assert "501 of 501 runs · rows 1–500" in texts(at, "caption") and len(at.dataframe[0].value) == 500
    at.number_input(key="history.page").set_value(2).run()
    assert "501 of 501 runs · rows 501–501" in texts(at, "caption")
    assert list(at.dataframe[0].value["run_id"]) == [ids[-1]]  # the oldest run is there too
