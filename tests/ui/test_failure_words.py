"""Failures in words on the pages: a failed run is never the default break-even reference, its failures read as
sentences with an example and a list one click away, a finished job speaks in the past tense, a raw parse error is
said in words (never beside "Failed reflection calls 0"), Resume is offered only where it can help, and the sweep
table reads whole words."""

from __future__ import annotations

import pandas as pd
import pytest

from core.analytics.failures import kind_sentence
from core.jobs import JobManager
from core.lm.breaker import FAILURE_KINDS
from core.tracking.store import TAG, RunStore
from tests.ui.conftest import Seed, assert_clean, open_page, seed_store, student_or_keywords, texts
from tests.ui.test_pages import metrics


def seed_settings():
    from core.config.settings import load_settings

    return load_settings()

REFUSAL = "I would rather not pick one of those."


@pytest.fixture
def with_dead(empty) -> tuple[Seed, str]:
    """The seeded demo runs, plus a baseline of the most expensive model whose every answer failed to parse."""
    from tests.stub_server import StubLLMServer

    with StubLLMServer(responder=student_or_keywords) as stub:
        seed = seed_store(empty, stub.base_url)
    store = RunStore(empty)
    records = store.read_csv(seed.original_id, "records.csv")
    n = len(records)
    dead = records.assign(predicted=None, correct=False, outcome="failed", error_kind="parse", raw_output=REFUSAL,
                          error="the answer names none of the labels")
    run_id = store.start_run("baseline", str(store.get_run(seed.original_id).data.tags[f"{TAG}task"]),
                             run_name="stub-dead · original",
                             tags={f"{TAG}model": "stub-dead", f"{TAG}program": "original", f"{TAG}degraded": "true",
                                   f"{TAG}degraded_reason": f"{n} of {n} examples failed."})
    store.log_metrics(run_id, {"n": n, "correct": 0, "accuracy": 0.0, "cost_per_1k": 99.0, "cost_usd": 0.1,
                               "failed": n, "failure_rate": 1.0, "answered": 0,
                               **{f"failed_{k}": (n if k == "parse" else 0) for k in FAILURE_KINDS}})
    store.log_artifacts(run_id, {"records.csv": dead})
    store.end_run(run_id)
    return seed, run_id


def test_compare_never_defaults_to_a_failed_reference_and_says_its_failures_in_words(with_dead):
    seed, dead = with_dead
    at = open_page("pages/compare.py")
    assert_clean(at)
    reference = at.selectbox(key="compare.reference")
    assert reference.value != dead and reference.value == seed.baseline_ids["stub-large"]
    said = " ".join(texts(at, "markdown"))
    n = len(RunStore(seed_settings()).read_csv(dead, "records.csv"))
    assert kind_sentence("parse", n, REFUSAL) in said  # "12 answers were not one of your labels, e.g. '…'"
    assert any(e.label.startswith("See the ") and "failed examples" in e.label for e in at.expander)
    assert not any("parse " in w for w in texts(at, "warning"))  # no "parse 12": words

    reference.select(dead).run()  # picked on purpose: said, and no accuracy claimed against it
    assert_clean(at)
    assert any("failed on this task" in w and "stub-dead" in w for w in texts(at, "warning"))
    spec = next(c.proto.spec for c in at.get("plotly_chart") if "Cumulative cost" in c.proto.spec)
    assert "accuracy not compared" in spec and "(significant)" not in spec


def _optimize_job(empty, error: str, state: str = "failed") -> str:
    from core.lm.models import PRESETS
    from core.optimize import OptimizeConfig
    from core.tasks import SampleSpec, TaskRef

    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=PRESETS[4], reflection=PRESETS[8])
    manager = JobManager(empty)
    job_id = manager.submit("optimize", "MIPROv2 · stub", config.to_dict())
    manager.write_progress(job_id, {"phase": "optimizing", "metric_calls_used": 10, "metric_calls_budget": 60,
                                    "failed_student_calls": 0, "failed_reflection_calls": 0, "failed_proposals": 0})
    manager.finish(job_id, state, error)  # type: ignore[arg-type]
    return job_id


def test_a_raw_parse_error_is_said_in_words_and_resume_is_not_offered(empty):
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    sig = dspy.Signature("basic_instruction -> proposed_instruction")
    raw = f"AdapterParseError: {AdapterParseError('JSONAdapter', sig, REFUSAL)}"
    at = open_page("pages/optimize.py", {"optimize.job_id": _optimize_job(empty, raw)})
    assert not at.exception
    shown = " ".join(texts(at, "error"))
    assert "AdapterParseError" not in shown and "[proposed_instruction]" not in shown
    assert "reflection model's answer could not be read" in shown
    assert metrics(at)["Failed reflection calls"] == "at least 1"  # never "0" beside that error
    assert not [b for b in at.button if b.label == "Resume"]
    assert any("would fail the same way" in c for c in texts(at, "caption"))


def test_an_unreachable_provider_can_be_resumed(empty):
    error = "stub: stopped after 5 failures in a row (last: unreachable: Connection refused)."
    at = open_page("pages/optimize.py", {"optimize.job_id": _optimize_job(empty, error)})
    assert not at.exception
    assert [b for b in at.button if b.label == "Resume"]


def test_a_finished_baseline_job_speaks_in_the_past_tense(empty):
    manager = JobManager(empty)
    job_id = manager.submit("baseline", "Baselines · dead", {"specs": [{"name": "stub-dead"}]})
    manager.write_progress(job_id, {"phase": "done", "models": {
        "stub-dead": {"done": 50, "total": 50, "failed": 50, "failed_by_kind": {"parse": 50}}}})
    manager.finish(job_id, "succeeded")
    at = open_page("pages/baselines.py", {"baselines.job_id": job_id})
    assert_clean(at)
    header = next(m for m in texts(at, "markdown") if "Baselines · dead" in m)
    assert "failed: every answer was unusable" in header and "succeeded" not in header
    warning = next(w for w in texts(at, "warning") if "stub-dead" in w)
    assert "50 of 50 examples failed (100.0%): 50 not a label" in warning and "so far" not in warning


def test_the_sweep_table_reads_whole_words():
    from ui.sweeps import CELL_COLUMNS, cells_table

    cells = pd.DataFrame([{"student": "s", "optimizer": "gepa", "budget": "light", "seed": 0, "state": "succeeded",
                           "metric_calls": 60, "best_val_score": 0.6, "cost_usd": 0.01, "job_id": "j1", "error": None}])
    table = cells_table(cells)
    assert "error" not in table.columns  # no "None" column when no job has an error
    assert CELL_COLUMNS["state"]["width"] >= 100  # "succeeded" / "interrupted" whole, not "succeede"
    failed = cells_table(pd.concat([cells, cells.assign(state="failed", error="boom")], ignore_index=True))
    assert failed["error"].tolist() == ["", "boom"]


def test_no_change_gets_no_green_arrow():
    from ui.widgets import points_delta

    assert points_delta(0.0) == {"delta": "±0.0 pts", "delta_color": "off", "delta_arrow": "off"}
    assert points_delta(0.04) == {"delta": "+4.0 pts"} and points_delta(-0.04) == {"delta": "−4.0 pts"}


def test_the_report_has_the_break_even_shown_on_screen_and_no_claim_against_a_failed_reference(with_dead):
    from core.report import build_report

    seed, dead = with_dead
    store = RunStore(seed_settings())
    html = build_report(store, [seed.optimization_id, seed.baseline_ids["stub-large"], dead])
    assert "When does the optimization pay for itself?" in html and "Against stub-large" in html  # not the dead one
    picked = build_report(store, [seed.optimization_id, dead], references={seed.optimization_id: dead})
    assert "It failed on this task" in picked and "accuracy not compared" in picked
