"""The run table (core.tracking.runs) and the pure helpers the pages use: no Streamlit, no store."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

import core.optimize  # noqa: F401 - the optimizer table (core.optimize.optimizers) lends the run table its labels
from core.analytics import diff, stats
from core.config.errors import ConfigError
from core.tasks import guess_columns
from core.tracking import runs as run_table
from core.tracking.procs import process_started
from core.tracking.store import RUN_COLUMNS, runs_frame


def runs(*rows: dict) -> pd.DataFrame:
    """A runs table shaped like RunStore.list_runs (missing columns are NaN / None)."""
    df = pd.DataFrame(list(rows))
    for col in RUN_COLUMNS:
        if col not in df:
            df[col] = None if col in ("parent_run_id", "job_id", "run_name") else float("nan")
    return df


def when(minute: int) -> pd.Timestamp:
    return pd.Timestamp(f"2026-11-24 10:{minute:02d}", tz="UTC")


BASE = dict(task="demo", status="FINISHED", n=50.0, macro_f1=0.5, cost_usd=0.01, cost_per_1k=0.2,
            accuracy_ci_low=0.4, accuracy_ci_high=0.7)


def test_chart_frame_labels_intervals_and_leaves_out_runs_without_accuracy():
    table = runs(
        dict(BASE, run_id="a", kind="baseline", model="small", program="original", accuracy=0.5, start_time=when(1)),
        dict(BASE, run_id="b", kind="evaluation", model="small", program="optimized", accuracy=0.8, start_time=when(2)),
        dict(BASE, run_id="c", kind="baseline", model="broken", program="original", accuracy=float("nan"),
             start_time=when(3)),
        dict(BASE, run_id="d", kind="optimization", model="small", program="gepa", accuracy=float("nan"),
             start_time=when(4)),
    )
    frame = run_table.chart_frame(table)
    assert list(frame["run_id"]) == ["a", "b"]
    assert list(frame["label"]) == ["small · Predict", "small · Predict · optimized"]  # no module tag: Predict
    assert list(frame["ci_low"]) == [0.4, 0.4] and list(frame["ci_high"]) == [0.7, 0.7]
    assert set(run_table.CHART_COLUMNS) <= set(frame.columns)
    assert run_table.chart_frame(runs().iloc[0:0]).empty


def test_each_optimizers_program_has_its_own_label():
    """Compare keeps the newest run per label: MIPROv2's, few-shot's and your own prompt's programs must not share
    one with GEPA's (their parent optimization's program tag says which optimizer made them)."""
    rows = [dict(BASE, run_id=f"opt-{o}", kind="optimization", model="small", program=o, accuracy=float("nan"),
                 start_time=when(i)) for i, o in enumerate(("gepa", "miprov2", "fewshot", "own"))]
    rows += [dict(BASE, run_id=f"e-{o}", kind="evaluation", model="small", program="optimized", accuracy=0.8,
                  parent_run_id=f"opt-{o}", start_time=when(10 + i))
             for i, o in enumerate(("gepa", "miprov2", "fewshot", "own"))]
    rows += [dict(BASE, run_id="e-orig", kind="evaluation", model="small", program="original", accuracy=0.5,
                  parent_run_id="opt-miprov2", start_time=when(20))]
    labels = dict(zip(*[run_table.chart_frame(runs(*rows))[c] for c in ("run_id", "label")], strict=True))
    assert labels == {"e-gepa": "small · Predict · optimized", "e-miprov2": "small · Predict · optimized by MIPROv2",
                      "e-fewshot": "small · Predict · optimized by Few-shot", "e-own": "small · Predict · own prompt",
                      "e-orig": "small · Predict"}
    evals = runs(*rows[4:])  # Compare's "Before/after" filter: the optimizations are not in the table
    evals["optimizer"] = [r["parent_run_id"].removeprefix("opt-") for r in rows[4:]]  # their studio.optimizer tag
    assert dict(zip(*[run_table.chart_frame(evals)[c] for c in ("run_id", "label")], strict=True)) == labels


def test_latest_per_label_keeps_the_newest_run_of_each_label():
    table = runs(
        dict(BASE, run_id="old", kind="baseline", model="m", program="original", accuracy=0.5, start_time=when(1)),
        dict(BASE, run_id="new", kind="baseline", model="m", program="original", accuracy=0.6, start_time=when(9)),
        dict(BASE, run_id="other", kind="baseline", model="n", program="original", accuracy=0.7, start_time=when(5)),
    )
    latest = run_table.latest_per_label(run_table.chart_frame(table))
    assert sorted(latest["run_id"]) == ["new", "other"]


def test_a_predict_and_a_cot_baseline_of_one_model_are_told_apart():
    table = runs(
        dict(BASE, run_id="p", kind="baseline", model="m", program="original", module="predict", accuracy=0.62,
             start_time=when(1)),
        dict(BASE, run_id="c", kind="baseline", model="m", program="original", module="cot", accuracy=0.0,
             start_time=when(2)),
        dict(BASE, run_id="o", kind="evaluation", model="m", program="optimized", module="cot", accuracy=0.7,
             start_time=when(3)),
    )
    frame = run_table.chart_frame(table)
    assert list(frame["label"]) == ["m · Predict", "m · CoT", "m · CoT · optimized"]
    assert list(frame["module"]) == ["predict", "cot", "cot"]
    assert sorted(run_table.latest_per_label(frame)["run_id"]) == ["c", "o", "p"]  # the CoT run replaces nothing
    assert list(run_table.filter_runs(table, modules=["cot"])["run_id"]) == ["c", "o"]
    assert run_table.run_choice_label(table.iloc[1].to_dict()).startswith("m · CoT · original · demo · ")
    assert run_table.module_name("predict") == "Predict" and run_table.module_name("react") == "react"


def test_optimization_outcomes_labels_and_the_newest_with_results():
    opt = dict(kind="optimization", program="gepa", task="demo", model="small", reflection_model="big",
               budget="light", original_test_accuracy=float("nan"), optimized_test_accuracy=float("nan"))
    table = runs(
        dict(opt, run_id="done", status="FINISHED", start_time=when(1), original_test_accuracy=0.45,
             optimized_test_accuracy=0.617),
        dict(opt, run_id="capped", status="KILLED", stop_reason="spending cap $0.05 reached", start_time=when(2),
             original_test_accuracy=0.5, optimized_test_accuracy=0.6, module="cot"),
        dict(opt, run_id="cancelled", status="KILLED", stop_reason="cancelled", start_time=when(3)),
        dict(opt, run_id="failed", status="FAILED", start_time=when(4), reflection_model=None, budget=None),
        dict(opt, run_id="running", status="RUNNING", start_time=when(5)),
        dict(opt, run_id="gone", status="INTERRUPTED", start_time=when(6)),
        dict(BASE, run_id="base", kind="baseline", model="small", program="original", accuracy=0.5, start_time=when(7)),
        dict(opt, run_id="mipro", program="miprov2", status="FINISHED", start_time=when(0)),
        dict(opt, run_id="own", program="own", status="FINISHED", start_time=when(0), budget=None),
    )
    opts = run_table.optimization_frame(table).set_index("run_id")
    assert opts["outcome"].to_dict() == {"done": "finished", "capped": "capped", "cancelled": "cancelled",
                                         "failed": "failed", "running": "running", "gone": "interrupted",
                                         "mipro": "finished", "own": "finished"}
    assert opts.loc["mipro", "run_label"] == "MIPROv2 · small ← big · light · no test results"
    assert opts.loc["own", "run_label"] == "Own prompt · small · no test results"  # no other model in it
    opts = opts.drop(index=["mipro", "own"])
    assert opts.loc["done", "run_label"] == "GEPA · small ← big · light · 45.0%→61.7%"
    assert opts.loc["capped", "run_label"] == "GEPA · small ← big · light · 50.0%→60.0% · capped"
    assert opts.loc["cancelled", "run_label"] == "GEPA · small ← big · light · no test results · cancelled"
    assert opts.loc["failed", "run_label"] == "GEPA · small ← ? · no test results · failed"
    assert opts["has_results"].to_dict() == {"done": True, "capped": True, "cancelled": False, "failed": False,
                                             "running": False, "gone": False}
    assert opts.loc["capped", "module"] == "cot" and opts.loc["done", "module"] == "predict"
    assert {r: run_table.has_test_results(table, r) for r in opts.index} == opts["has_results"].to_dict()
    assert not run_table.has_test_results(table, "no-such-run") and not run_table.has_test_results(table, None)
    assert run_table.latest_optimization(table) == "capped"  # newer runs have no test results
    assert run_table.latest_optimization(table[table["run_id"].isin(["cancelled", "failed"])]) == "failed"
    assert run_table.latest_optimization(table[table["kind"] == "baseline"]) is None


def test_optimization_frame_and_linked_evaluations_from_tags_or_children():
    table = runs(
        dict(run_id="opt", kind="optimization", model="small", program="gepa", task="demo", status="FINISHED",
             start_time=when(1), student_cost_usd=0.01, reflection_cost_usd=0.04, optimization_cost_usd=0.05,
             reflection_model="big", budget="light"),
        dict(BASE, run_id="e2", kind="evaluation", model="small", program="optimized", accuracy=0.8,
             parent_run_id="opt", start_time=when(3)),
        dict(BASE, run_id="e1", kind="evaluation", model="small", program="original", accuracy=0.5,
             parent_run_id="opt", start_time=when(2)),
    )
    opts = run_table.optimization_frame(table)
    assert list(opts["run_label"]) == ["GEPA · small ← big · light · no test results"]
    assert opts.loc[0, "reflection_cost_usd"] == 0.04 and math.isnan(opts.loc[0, "optimized_test_accuracy"])
    tagged = {run_table.ORIGINAL_TAG: "x1", run_table.OPTIMIZED_TAG: "x2"}
    assert run_table.linked_evaluations("opt", tagged, table) == ("x1", "x2")
    assert run_table.linked_evaluations("opt", {}, table) == ("e1", "e2")
    assert run_table.linked_evaluations("other", {}, table) == (None, None)
    assert run_table.latest_optimization(table) == "opt"


def test_paired_summary_matches_examples_by_index():
    before = pd.DataFrame({"idx": [0, 1, 2, 3], "gold": list("ABAB"), "correct": [True, False, False, True]})
    after = pd.DataFrame({"idx": [3, 2, 1, 0], "gold": list("BABA"), "correct": [True, True, True, False]})
    summary = stats.paired_summary(before, after)
    assert summary["n"] == 4 and summary["accuracy_before"] == 0.5 and summary["accuracy_after"] == 0.75
    assert summary["diff"] == pytest.approx(0.25)
    assert (summary["after_only"], summary["before_only"]) == (2, 1)  # idx 1 and 2 vs idx 0
    assert 0 <= summary["p_mcnemar"] <= 1 and summary["ci_low"] <= summary["diff"] <= summary["ci_high"]
    assert summary["p_value"] is None and "p_bootstrap" not in summary  # 3 discordant examples: too few to test


def test_paired_summary_refuses_different_examples():
    before = pd.DataFrame({"idx": [0, 1], "gold": ["A", "B"], "correct": [True, False]})
    with pytest.raises(ConfigError, match="same examples"):
        stats.paired_summary(before, pd.DataFrame({"idx": [0, 1, 2], "gold": ["A", "B", "A"],
                                                    "correct": [True, True, True]}))
    with pytest.raises(ConfigError, match="differ"):
        stats.paired_summary(before, pd.DataFrame({"idx": [0, 1], "gold": ["B", "B"], "correct": [True, True]}))


def test_filter_runs_and_distinct_values():
    table = runs(dict(run_id="a", kind="baseline", task="demo", model="m", status="FINISHED"),
                 dict(run_id="b", kind="optimization", task="demo", model="n", status="FAILED"),
                 dict(run_id="c", kind="baseline", task="pubmed", model="m", status="FINISHED"))
    assert list(run_table.filter_runs(table)["run_id"]) == ["a", "b", "c"]
    assert list(run_table.filter_runs(table, kinds=["baseline"], tasks=["demo"])["run_id"]) == ["a"]
    assert list(run_table.filter_runs(table, statuses=["FAILED"])["run_id"]) == ["b"]
    assert run_table.distinct(table, "model") == ["m", "n"]


def test_most_expensive_reference():
    frame = pd.DataFrame({"run_id": ["a", "b", "c"], "cost_per_1k": [0.1, 2.0, float("nan")]})
    assert run_table.most_expensive(frame) == "b"
    assert run_table.most_expensive(frame, exclude=["b"]) == "a"
    assert run_table.most_expensive(frame.iloc[2:]) is None


def test_diff_html_marks_words_and_escapes_markup():
    out = diff.diff_html("Classify the <text> now.", "Classify the <text> carefully now.")
    assert "<ins>carefully </ins>" in out and "&lt;text&gt;" in out and "<text>" not in out
    assert "<del>" not in out
    replaced = diff.diff_html("label A", "label B")
    assert "<del>A</del><ins>B</ins>" in replaced
    assert diff.diff_counts("a b c", "a x c d") == {"removed": 1, "added": 2}


def test_guess_columns_by_name_then_by_shape():
    named = pd.DataFrame({"id": [1, 2], "Sentence": ["a long text", "another"], "Label": ["x", "y"]})
    assert guess_columns(named) == ("Sentence", "Label")
    unnamed = pd.DataFrame({"a": ["x", "y", "x"], "b": ["a long sentence", "another long one", "a third text"]})
    assert guess_columns(unnamed) == ("b", "a")


def test_split_label_counts_stacks_splits():
    train = pd.DataFrame({"target": ["A", "B", "B"]})
    test = pd.DataFrame({"target": ["A"]})
    counts = run_table.split_label_counts({"train": train, "validation": None, "test": test}, "target")
    assert counts.to_dict("records") == [
        {"label": "A", "count": 1, "split": "train"}, {"label": "B", "count": 2, "split": "train"},
        {"label": "A", "count": 1, "split": "test"},
    ]


def test_run_choice_label_reads_well_with_missing_values():
    row = {"run_id": "0123456789", "model": None, "run_name": "GEPA · x", "program": None, "kind": "optimization",
           "task": "demo", "start_time": pd.NaT}
    assert run_table.run_choice_label(row) == "GEPA · x · Predict · optimization · demo · ? · 01234567"


class _Run:
    """The shape of an MLflow run that runs_frame reads."""

    def __init__(self, run_id, status, tags, metrics=None, params=None):
        self.info = SimpleNamespace(run_id=run_id, run_name=run_id, status=status, start_time=0, end_time=None)
        self.data = SimpleNamespace(tags={"studio.kind": "baseline", **tags}, metrics=metrics or {},
                                    params=params or {})


def test_runs_whose_process_is_gone_read_interrupted_and_partial():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = {"studio.host": socket.gethostname()}
    frame = runs_frame([
        _Run("dead", "RUNNING", {**here, "studio.pid": str(dead.pid)}),
        _Run("alive", "RUNNING", {**here, "studio.pid": str(os.getpid()),
                                  "studio.pid_started": process_started(os.getpid())}),
        _Run("reused", "RUNNING", {**here, "studio.pid": str(os.getpid()), "studio.pid_started": "1"}),
        _Run("elsewhere", "RUNNING", {"studio.host": "another-machine", "studio.pid": str(dead.pid)}),
        _Run("stopped", "KILLED", {"studio.state": "interrupted"}, {"complete": 0.0, "failed": 2.0, "n": 5.0}),
        _Run("degraded", "FINISHED", {"studio.degraded": "true"},
             {"complete": 1.0, "failed": 3.0, "failure_rate": 0.3}),
        _Run("old", "FINISHED", {}, {"accuracy": 0.5}),
        _Run("opt", "KILLED", {"studio.kind": "optimization", "studio.stop_reason": "cancelled"}, {},
             {"module": "cot", "budget": "light", "reflection_model_name": "big"}),
    ]).set_index("run_id")
    assert frame["module"].to_dict() == {**dict.fromkeys(frame.index, "predict"), "opt": "cot"}  # no tag: Predict
    assert frame.loc["opt", ["budget", "reflection_model", "stop_reason"]].tolist() == ["light", "big", "cancelled"]
    assert frame.loc["old", "stop_reason"] == "" and frame.loc["old", "budget"] is None
    frame = frame.drop(index="opt")
    assert frame["status"].to_dict() == {"dead": "INTERRUPTED", "alive": "RUNNING", "reused": "INTERRUPTED",
                                         "elsewhere": "RUNNING", "stopped": "INTERRUPTED", "degraded": "FINISHED",
                                         "old": "FINISHED"}
    assert frame["partial"].to_dict() == {"dead": True, "alive": False, "reused": True, "elsewhere": False,
                                          "stopped": True, "degraded": False, "old": False}
    assert list(frame.index[frame["degraded"]]) == ["degraded"]
    assert frame.loc["degraded", "failure_rate"] == 0.3 and math.isnan(frame.loc["old", "failed"])  # unknown, not 0
