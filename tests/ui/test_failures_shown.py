"""Failures are visible: failed examples by kind and a DEGRADED badge on the Baselines, Compare and History pages
and in the job panels (a failure is never shown as a plain result, nor a degraded run as a plain "succeeded")."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.jobs import JobManager
from core.lm.breaker import FAILURE_KINDS
from core.tracking.store import TAG, RunStore
from tests.ui.conftest import assert_clean, open_page, texts
from tests.ui.test_pages import chart_specs, metrics, table_with

BREAKER_ERROR = "stub-dead: the provider stopped answering (unreachable: Connection refused); 5 failures in a row."
REASON = "12 of 20 examples failed (60.0%), above the 5.0% limit."


@dataclass(frozen=True)
class Failing:
    healthy: str
    dead: str
    older: str
    optimization: str
    job_id: str


def _evaluation(store: RunStore, model: str, *, correct: int, n: int, failed: dict[str, int] | None,
                tags: dict[str, str] | None = None, status: str = "FINISHED") -> str:
    """A baseline run as the evaluation code logs it; ``failed=None`` is an older run without failure metrics."""
    run_id = store.start_run("baseline", "demo", run_name=f"{model} · original",
                             tags={f"{TAG}model": model, f"{TAG}program": "original", **(tags or {})})
    metrics = {"n": n, "correct": correct, "accuracy": correct / n, "macro_f1": correct / n / 2, "cost_usd": 0.01,
               "cost_per_1k": 0.5}
    if failed is not None:
        total = sum(failed.values())
        metrics |= {"failed": total, "failure_rate": total / n, "answered": n - total,
                    "accuracy_answered": correct / (n - total) if n > total else float("nan"),
                    **{f"failed_{kind}": failed.get(kind, 0) for kind in FAILURE_KINDS}}
    store.log_metrics(run_id, metrics)
    store.end_run(run_id, status)  # type: ignore[arg-type]
    return run_id


@pytest.fixture
def failing(empty) -> Failing:
    """A healthy baseline, one the circuit breaker stopped (degraded), an older one, and a degraded optimization."""
    store = RunStore(empty)
    manager = JobManager(empty)
    job_id = manager.submit("baseline", "Baselines · stub-dead · demo", {"specs": [{"name": "stub-dead"}]})
    healthy = _evaluation(store, "stub-small", correct=16, n=20, failed={})
    dead = _evaluation(store, "stub-dead", correct=5, n=20, failed={"unreachable": 9, "timeout": 3}, status="FAILED",
                       tags={f"{TAG}job_id": job_id, f"{TAG}degraded": "true", f"{TAG}degraded_reason": REASON,
                             f"{TAG}stopped_by": "breaker", f"{TAG}error": BREAKER_ERROR})
    older = _evaluation(store, "stub-old", correct=10, n=20, failed=None)
    opt = store.start_run("optimization", "demo", run_name="GEPA · stub-small ← stub-dead",
                          tags={f"{TAG}model": "stub-small", f"{TAG}program": "gepa", f"{TAG}degraded": "true",
                                f"{TAG}degraded_reason": "Every reflection call failed: no proposal was made."})
    store.log_metrics(opt, {"optimization_cost_usd": 0.01, "student_cost_usd": 0.01, "reflection_cost_usd": 0.0,
                            "failed_student_calls": 0, "failed_reflection_calls": 4, "failed_proposals": 4})
    store.end_run(opt)
    return Failing(healthy, dead, older, opt, job_id)


def test_baselines_table_chart_and_warning_show_failures_and_degraded(failing):
    at = open_page("pages/baselines.py")
    assert_clean(at)
    table = table_with(at, "model", "failures by kind", "cost_per_1k").set_index("model")
    assert {"failed", "failure_rate", "degraded", "failures by kind"} <= set(table.columns)
    dead, healthy, older = table.loc["stub-dead"], table.loc["stub-small"], table.loc["stub-old"]
    assert dead["failed"] == 12 and dead["failure_rate"] == pytest.approx(0.6) and dead["degraded"] == "DEGRADED"
    assert dead["failures by kind"] == "9 server unreachable, 3 timed out"
    assert dead["accuracy"] == pytest.approx(0.25)  # the 12 failures count as wrong, not as left out
    assert healthy["failed"] == 0 and healthy["degraded"] == ""
    assert older["failed"] != older["failed"] and older["degraded"] == ""  # NaN: not counted, not "no failures"

    warnings = texts(at, "warning")
    dead_warning = next(w for w in warnings if "stub-dead" in w)
    assert "DEGRADED" in dead_warning and "12 failed (60.0%): 9 server unreachable, 3 timed out" in dead_warning
    assert REASON in dead_warning and BREAKER_ERROR in dead_warning
    assert not any("stub-small" in w or "stub-old" in w for w in warnings)

    chart = chart_specs(at)[0]
    assert "12 failed · DEGRADED" in chart and "9 server unreachable, 3 timed out" in chart
    assert '"barmode":"overlay"' in chart.replace(" ", "")  # failures are no bar segment


def test_compare_warns_about_degraded_and_breaker_stopped_runs(failing):
    at = open_page("pages/compare.py")
    assert_clean(at)
    warnings = texts(at, "warning")
    dead_warning = next(w for w in warnings if "stub-dead" in w)
    assert "DEGRADED" in dead_warning and "Stopped by the circuit breaker" in dead_warning
    assert BREAKER_ERROR in dead_warning
    opt_warning = next(w for w in warnings if "GEPA" in w)
    assert "4 failed reflection calls · 4 failed proposals" in opt_warning and "DEGRADED" in opt_warning
    assert len(warnings) == 2  # the healthy and the older run raise nothing

    accuracy, cost = chart_specs(at)[:2]
    assert "12 failed · DEGRADED" in accuracy and "12 failed (60.0%): 9 server unreachable, 3 timed out" in cost
    table = table_with(at, "model", "failures by kind", "label").set_index("model")
    assert table.loc["stub-dead", "failed"] == 12 and table.loc["stub-dead", "degraded"] == "DEGRADED"
    assert table.loc["stub-small", "failure_rate"] == 0
    assert not any(c.startswith("failed_") for c in table.columns)  # one "failures by kind" column instead


def test_history_lists_failures_and_the_run_detail_says_degraded(failing):
    at = open_page("pages/history.py")
    assert_clean(at)
    table = table_with(at, "run_id", "degraded", "kind").set_index("run_id")
    assert table.loc[failing.dead, "degraded"] == "DEGRADED" and table.loc[failing.dead, "failed"] == 12
    assert table.loc[failing.optimization, "degraded"] == "DEGRADED"
    at.selectbox(key="history.run").select(failing.dead).run()
    assert not at.exception
    assert BREAKER_ERROR in texts(at, "error")  # the breaker's message, as the run's error
    assert any("DEGRADED" in w and REASON in w and "circuit breaker" in w for w in texts(at, "warning"))
    assert any("Failures: 12 failed (60.0%): 9 server unreachable, 3 timed out" in c for c in texts(at, "caption"))


def test_baseline_panel_counts_provider_errors_as_they_happen(empty):
    manager = JobManager(empty)
    job_id = manager.submit("baseline", "Baselines · demo", {"specs": [{"name": "stub-dead"}, {"name": "stub-small"}]})
    manager.write_progress(job_id, {"phase": "evaluating", "models": {
        "stub-dead": {"done": 12, "total": 20, "failed": 9, "failed_by_kind": {"timeout": 2, "unreachable": 7}},
        "stub-small": {"done": 10, "total": 20, "failed": 0, "failed_by_kind": {}}}})
    at = open_page("pages/baselines.py", {"baselines.job_id": job_id})
    assert_clean(at)
    assert [p.text for p in at.get("progress")] == ["stub-dead: 12 / 20 examples · 9 failed",
                                                    "stub-small: 10 / 20 examples"]
    warning = next(w for w in texts(at, "warning") if "stub-dead" in w)
    assert "9 of 12 examples failed so far (75.0%): 7 server unreachable, 2 timed out" in warning
    assert "Check the base URL" in warning  # the hint of the commonest kind
    assert not any("DEGRADED" in m for m in texts(at, "markdown"))  # still running: judged when it ends

    # It ends "succeeded" with 9 of 20 failed: a degraded run, never a plain success.
    manager.write_progress(job_id, {"phase": "done", "models": {
        "stub-dead": {"done": 20, "total": 20, "failed": 9, "failed_by_kind": {"unreachable": 9}},
        "stub-small": {"done": 20, "total": 20, "failed": 0}}})
    manager.finish(job_id, "succeeded")
    at.run()
    header = next(m for m in texts(at, "markdown") if "Baselines · demo" in m)
    assert "finished, 9 of 40 examples failed" in header and "DEGRADED" in header  # past tense, not "succeeded"
    assert [p.text for p in at.get("progress")][0] == "stub-dead: 20 / 20 examples · 9 failed — DEGRADED"


def test_baseline_panel_reads_degraded_from_the_run_tags(empty, failing):
    manager = JobManager(empty)
    manager.write_progress(failing.job_id, {"phase": "done", "models": {"stub-dead": {"done": 20, "total": 20}},
                                            "runs": {"stub-dead": {"run_id": failing.dead, "error": None}}})
    manager.finish(failing.job_id, "succeeded")
    at = open_page("pages/baselines.py", {"baselines.job_id": failing.job_id})
    assert_clean(at)
    header = next(m for m in texts(at, "markdown") if "Baselines · stub-dead" in m)
    assert "DEGRADED" in header  # no failure counts in this progress: the run's studio.degraded tag decides


def test_optimization_panel_shows_failed_calls_and_degraded(empty):
    from core.lm.models import PRESETS
    from core.optimize import OptimizeConfig
    from core.tasks import SampleSpec, TaskRef

    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=PRESETS[4], reflection=PRESETS[8])
    manager = JobManager(empty)
    job_id = manager.submit("optimize", "GEPA · dead reflection", config.to_dict())
    progress = {"phase": "optimizing", "metric_calls_used": 40, "metric_calls_budget": 440, "iteration": 3,
                "candidates": 1, "failed_student_calls": 2, "failed_reflection_calls": 6, "failed_proposals": 6}
    manager.write_progress(job_id, progress)
    at = open_page("pages/optimize.py", {"optimize.job_id": job_id})
    assert_clean(at)
    shown = metrics(at)
    assert (shown["Failed student calls"], shown["Failed reflection calls"], shown["Failed proposals"]) == (
        "2", "6", "6")
    warnings = " ".join(texts(at, "warning"))
    assert "failed 6 call(s) and 6 proposal(s)" in warnings and "2 student call(s) failed" in warnings

    manager.write_progress(job_id, {**progress, "phase": "done", "degraded": True})
    manager.finish(job_id, "succeeded")
    at.run()
    header = next(m for m in texts(at, "markdown") if "GEPA · dead reflection" in m)
    assert "Finished" in header and "DEGRADED" in header
