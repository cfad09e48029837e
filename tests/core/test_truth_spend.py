"""Spend that is real (issue 20, item 4): a run's SPEND (what the provider billed; cache hits are free) and the COST OF
THE PROGRAM (tokens x price per prediction; cache hits at list price) are two numbers, named apart, and every run
(failed, cancelled, capped included) shows its spend. Also two blind spots: the spending cap with a free student
and a priced reflection model, and a run table of 5,001 runs listed whole."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest
import streamlit as st

from core.evaluation.baseline import run_evaluation
from core.evaluation.evaluate import EvalOptions
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import run_optimization
from core.program.program import make_program
from core.tasks import table_task
from core.tracking.runs import HISTORY_COLUMNS, chart_frame, optimization_frame, run_spend, spend, with_spend
from core.tracking.store import RunStore
from tests.core.test_optimize import config, fake_factory, http_config
from tests.core.test_optimizers import make_config, responder
from tests.core.test_search import teacher
from tests.scenario import make_table, write_csv
from tests.stub_server import Faults, gepa_responder
from tests.ui.conftest import assert_clean, open_page

IN_PER_M, OUT_PER_M = 0.5, 7.0


def priced(stub) -> ModelSpec:
    return ModelSpec("stub", "openai/stub-small", "openai-compatible", api_base=stub.base_url,
                     input_price_per_m=IN_PER_M, output_price_per_m=OUT_PER_M, temperature=0.0)


def test_a_cached_rerun_spends_nothing_and_its_program_costs_the_same(stub, store):
    """Before: History showed the list-price ``cost_usd`` as "cost" ($0.0743 for a run answered wholly from the
    cache). After: the run table's spend is 0 for the cached re-run, its cost per 1k equals the first run's, and
    History shows "spend" (0) beside "cost per 1k predictions"."""
    df = make_table(4)
    task = table_task(df, text_column="description", label_column="target", name="scenario")
    first, _ = run_evaluation(store, task, priced(stub), make_program(task), df,
                              options=EvalOptions(threads=4, cache=True))
    calls = len(stub.chat_requests())
    again, _ = run_evaluation(store, task, priced(stub), make_program(task), df,
                              options=EvalOptions(threads=4, cache=True))
    assert calls == 20 and len(stub.chat_requests()) == calls  # the re-run made no call
    table = with_spend(store.list_runs()).set_index("run_id")
    one, two = table.loc[first], table.loc[again]
    assert one["spent_usd"] == pytest.approx(one["cost_usd"]) and one["spent_usd"] > 0
    assert two["spent_usd"] == 0.0 and two["cost_usd"] == pytest.approx(one["cost_usd"])
    assert two["cost_per_1k"] == pytest.approx(one["cost_per_1k"]) and one["cost_per_1k"] > 0
    charted = chart_frame(store.list_runs()).set_index("run_id")
    assert charted.loc[again, "spent_usd"] == 0.0 and charted.loc[first, "spent_usd"] > 0
    assert "spent_usd" in HISTORY_COLUMNS and "cost_usd" not in HISTORY_COLUMNS

    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_page("pages/history.py")
    assert_clean(at)
    shown = at.dataframe[0].value.set_index("run_id")
    assert shown.loc[again, "spent_usd"] == 0.0 and shown.loc[first, "spent_usd"] == pytest.approx(one["spent_usd"])
    assert shown.loc[again, "cost_per_1k"] == pytest.approx(shown.loc[first, "cost_per_1k"])
    at.selectbox(key="history.run").set_value(again).run()
    assert [m.value for m in at.metric if m.label == "Spend"] == ["$0.0000"]
    assert any(c.startswith("20 ") and "answered from the cache" in c for c in (str(c.value) for c in at.caption))


def test_a_run_from_before_spent_usd_reads_sensibly():
    """Old runs: an optimization's optimization_cost_usd (else a failed GEPA run's running_cost_usd) is its spend; an
    evaluation's list-price cost is its spend only when nothing came from the cache (all cached: 0; some: unknown)."""
    import pandas as pd

    old = pd.DataFrame([
        {"kind": "optimization", "optimization_cost_usd": 0.03},
        {"kind": "optimization", "running_cost_usd": 0.011},
        {"kind": "optimization"},
        {"kind": "baseline", "cost_usd": 0.07, "cached": 0.0, "n": 20.0},
        {"kind": "baseline", "cost_usd": 0.07, "cached": 20.0, "n": 20.0},
        {"kind": "evaluation", "cost_usd": 0.07, "cached": 5.0, "n": 20.0},
        {"kind": "baseline", "cost_usd": 0.07, "cached": 20.0, "n": 20.0, "spent_usd": 0.0},
    ])
    assert spend(old).tolist() == pytest.approx([0.03, 0.011, float("nan"), 0.07, 0.0, float("nan"), 0.0],
                                                nan_ok=True)
    assert run_spend("optimization", {}) is None and run_spend("baseline", {"spent_usd": 0.0}) == 0.0


@pytest.mark.parametrize("optimizer, budget", [("miprov2", dict(auto="light")),
                                               ("fewshot", dict(auto=None, max_full_evals=2))])
def test_a_failed_optimization_shows_what_it_spent(settings, tmp_path, stub, optimizer, budget):
    """Before: a MIPROv2 / few-shot run whose provider died ended FAILED with no spend metric (Compare read $0.0000
    while its progress said $0.0112). After: its spend, by role, is in the run table and equals its progress."""
    from core.tasks import TaskRef

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    stub.responder = responder
    stub.faults = Faults(die_after=8)  # the server goes away mid-search: the optimizer raises
    store = RunStore(settings)
    cfg = make_config(ref, stub.base_url, optimizer, **budget)
    cfg = replace(cfg, student=replace(cfg.student, num_retries=0), reflection=replace(cfg.reflection, num_retries=0))
    res = run_optimization(cfg, store, log_dir=settings.jobs_dir / optimizer)
    assert res.status == "failed" and store.get_run(res.run_id).info.status == "FAILED"
    spent = res.progress["total_cost_usd"]
    assert spent > 0
    row = optimization_frame(store.list_runs(kind="optimization")).set_index("run_id").loc[res.run_id]
    assert row["outcome"] == "failed"
    assert row["spent_usd"] == pytest.approx(spent) and row["student_cost_usd"] == pytest.approx(
        res.progress["student_cost_usd"])
    assert row["student_cost_usd"] + row["reflection_cost_usd"] == pytest.approx(spent)
    assert row["cached_calls"] == 0  # the cache was off


def test_an_optimization_counts_its_calls_from_the_cache(settings, store, tmp_path, stub):
    """A run says how many of its LM calls came from the cache: the same GEPA run twice with the cache on, the
    second answered wholly from the cache, spends nothing and logs every call as cached; the first logged none."""
    from core.tasks import TaskRef

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    stub.responder = gepa_responder
    runs = []
    for attempt in range(2):
        cfg = replace(http_config(ref, stub, max_metric_calls=30), cache=True)
        runs.append(run_optimization(cfg, store, log_dir=settings.jobs_dir / f"gepa{attempt}"))
        if attempt == 0:
            calls = len(stub.chat_requests())
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    first, second = (store.get_run(r.run_id).data.metrics for r in runs)
    assert first["cached_calls"] == 0 and first["spent_usd"] > 0
    assert second["spent_usd"] == 0.0 and second["optimization_cost_usd"] == 0.0
    assert second["cached_calls"] == runs[1].progress["student_calls"] + runs[1].progress["reflection_calls"] > 0
    for eval_id in (runs[1].original_eval_run_id, runs[1].optimized_eval_run_id):  # its test evaluations too
        m = store.get_run(eval_id).data.metrics
        assert m["spent_usd"] == 0.0 and m["cost_usd"] > 0
    assert len(stub.chat_requests()) == calls  # the second run made no call at all


@pytest.mark.parametrize("feedback", ["rule", "judge"])
def test_the_spending_cap_counts_a_priced_reflection_model_beside_a_free_student(settings, store, tmp_path,
                                                                                 feedback):
    """Blind spot: a free student (a local server, price 0) and a priced reflection model (which is also the LLM
    judge with judge feedback). A cap that counted only the student's spend would never stop this run; it stops
    at the cap, and the run table shows the reflection's spend."""
    from core.tasks import TaskRef

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    free = openai_compatible("pupil", "pupil", "http://127.0.0.1:9/v1")
    dear = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1",
                     input_price_per_m=3.0, output_price_per_m=15.0)
    cap = 0.002
    cfg = config(ref, free, dear, max_metric_calls=400, max_cost_usd=cap, feedback=feedback)
    res = run_optimization(cfg, store, log_dir=settings.jobs_dir / "cap", lm_factory=fake_factory(teacher()))
    assert res.status == "cancelled" and res.stop_reason == "spending cap $0.002 reached", res.stop_reason
    p = res.progress
    assert p["student_cost_usd"] == 0.0 and p["student_calls"] > 0 and p["metric_calls_used"] < 400
    # checked between iterations: it overshoots by one
    assert cap <= p["reflection_cost_usd"] == p["total_cost_usd"] < 4 * cap
    row = optimization_frame(store.list_runs(kind="optimization")).iloc[0]
    assert row["outcome"] == "capped" and row["spent_usd"] == pytest.approx(p["total_cost_usd"])


def test_a_table_of_5001_runs_lists_every_one(store):
    """Blind spot: the old 5,000 cut. 5,001 runs (written in one transaction through MLflow's own SQL models) are all
    in the run table, through the SQL read and through MLflow's paged search (the tracking-server path)."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlRun, SqlTag
    from sqlalchemy import insert

    n = 5001
    exp_id, now = int(store.experiment_id("demo")), int(time.time() * 1000)
    ids = [uuid.uuid4().hex for _ in range(n)]
    with store.client._tracking_client.store.ManagedSessionMaker() as session:
        session.execute(insert(SqlRun.__table__), [
            dict(run_uuid=rid, name=f"run {i}", source_type="UNKNOWN", status="FINISHED", start_time=now - i * 1000,
                 user_id="t", end_time=now - i * 1000 + 10, lifecycle_stage="active", experiment_id=exp_id,
                 artifact_uri="")
            for i, rid in enumerate(ids)])
        session.execute(insert(SqlTag.__table__), [dict(key=k, value=v, run_uuid=rid) for rid in ids
                                                   for k, v in (("studio.kind", "baseline"), ("studio.task", "demo"))])
        session.execute(insert(SqlLatestMetric.__table__), [
            dict(key="spent_usd", value=0.001, timestamp=now, step=0, is_nan=False, run_uuid=rid) for rid in ids])
    table = store.list_runs()
    assert len(table) == n and table["run_id"].tolist() == ids  # newest first, the oldest included
    assert with_spend(table)["spent_usd"].sum() == pytest.approx(n * 0.001)
    assert len(store.list_runs(kind="baseline", task="demo")) == n
    searched = store.search("tags.`studio.kind` = 'baseline'")
    assert len(searched) == n and searched[-1].info.run_id == ids[-1]


def test_an_example_answered_partly_from_the_cache_spends_only_its_billed_calls():
    """A parse failure retried by the JSON adapter is two calls: when one came from the cache, the example's spend
    is the other's cost, not its whole list-price cost (nor 0). Records from before spent_usd read as before."""
    import pandas as pd

    from core.evaluation.records import RECORD_COLUMNS, EvalRecord, aggregate

    rows = [  # list-price cost 0.02 each; the first example's second call was billed (0.01), the first cached
        {"idx": 0, "text": "a", "gold": "X", "predicted": "X", "correct": True, "outcome": "correct",
         "cost_usd": 0.02, "cached": False, "calls": 2, "cached_calls": 1, "spent_usd": 0.01},
        {"idx": 1, "text": "b", "gold": "X", "predicted": "X", "correct": True, "outcome": "correct",
         "cost_usd": 0.02, "cached": True, "calls": 1, "cached_calls": 1, "spent_usd": 0.0},
    ]
    records = pd.DataFrame([vars(EvalRecord(**r)) for r in rows], columns=RECORD_COLUMNS)
    metrics = aggregate(records, ("X", "Y"))[0]
    assert metrics["cost_usd"] == pytest.approx(0.04) and metrics["spent_usd"] == pytest.approx(0.01)
    old = records.drop(columns=["spent_usd"])
    assert aggregate(old, ("X", "Y"))[0]["spent_usd"] == pytest.approx(0.02)  # before: uncached ones at list price
