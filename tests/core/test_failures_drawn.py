"""Failed runs are drawn as failures, never as results: at their accuracy with a cross and the failure count, left off
the Pareto front and out of every default; failure kinds in words with an example; a job's raw parse error in words;
Resume only where it can change the outcome; one phrase for "how many test examples" in verdicts and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.analytics import charts, failures, stats
from core.analytics.verdict import verdict
from core.lm.breaker import FAILURE_KINDS
from core.report.optimization import verdict_table


def _runs() -> pd.DataFrame:
    """Three healthy runs at 62 % and one whose 50 answers all failed to parse (degraded), the cheapest of all."""
    rows = [("r1", "stub-small", "original", 0.62, 0.10, 0), ("r2", "stub-mid", "original", 0.62, 0.50, 0),
            ("r3", "stub-large", "original", 0.62, 5.00, 0), ("r4", "stub-dead", "original", 0.0, 0.05, 50)]
    df = pd.DataFrame(rows, columns=["run_id", "model", "program", "accuracy", "cost_per_1k", "failed"])
    df["label"] = df["model"] + " · Predict"
    df["n"] = 50
    df["failure_rate"] = df["failed"] / df["n"]
    df["degraded"] = df["failed"] > 0
    for kind in FAILURE_KINDS:
        df[f"failed_{kind}"] = df["failed"] if kind == "parse" else 0
    df["start_time"] = pd.to_datetime(["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-04"])
    return df


def test_a_fully_failed_run_is_drawn_at_its_accuracy_with_a_cross_and_its_count():
    fig = charts.accuracy_bars(_runs())
    dead = "stub-dead · Predict"
    for trace in fig.data:  # nothing of the dead run reaches above its 0 % accuracy on the accuracy axis
        if trace.type == "bar":
            values = dict(zip(trace.y, np.asarray(trace.x, dtype=float), strict=True))
            assert values.get(dead, 0.0) == 0.0, trace.name
    cross = next(t for t in fig.data if t.name == "failed")
    assert cross.type == "scatter" and list(cross.y) == [dead] and list(cross.x) == [0.0]
    labels = next(t for t in fig.data if t.name == "labels")
    text = dict(zip(labels.y, labels.text, strict=True))
    assert text[dead] == "0.0% · n=50<br>\u26a0 50 failed · DEGRADED"
    assert text["stub-small · Predict"] == "62.0% · n=50"  # each label on its own row: no "62.0%62.0%62.0%"
    assert all(t.orientation == "h" for t in fig.data if t.type == "bar")
    assert "50 answers were not one of your labels" not in str(fig.to_json())  # the sentence is for pages; the
    assert "50 not a label" in str(fig.to_json())  # chart says the kind briefly, in words


def test_a_failed_run_is_crossed_at_its_accuracy_and_left_off_the_pareto_front():
    fig = charts.accuracy_vs_cost(_runs())
    dead = next(t for t in fig.data if t.name == "stub-dead · Predict")
    assert list(np.asarray(dead.y, dtype=float)) == [0.0] and list(dead.text) == ["\u26a0 50 failed · DEGRADED"]
    assert "x" in dead.marker.symbol and "markers+text" == dead.mode
    front = next(t for t in fig.data if t.name == "Pareto front")
    assert "stub-dead · Predict" not in list(front.text)  # cheapest, but no trade-off to pick
    assert list(front.text) == ["stub-small · Predict"]


def test_failed_runs_stay_out_of_defaults():
    runs = _runs()
    assert failures.failed_runs(runs).tolist() == [False, False, False, True]
    assert failures.failed_runs(pd.DataFrame({"status": ["FAILED", "FINISHED"]})).tolist() == [True, False]
    assert failures.failed_runs(pd.DataFrame({"failure_rate": [1.0, 0.02]})).tolist() == [True, False]
    assert list(failures.usable(runs)["run_id"]) == ["r1", "r2", "r3"]
    # The newest run of a label failed: "newest" shows the newest usable one; a label that only failed keeps it.
    again = runs.iloc[[0]].assign(run_id="r5", accuracy=0.0, failed=50, failure_rate=1.0, degraded=True,
                                  start_time=pd.Timestamp("2026-12-05"))
    newest = failures.newest_per_label(pd.concat([runs, again], ignore_index=True)).set_index("label")
    assert newest.loc["stub-small · Predict", "run_id"] == "r1"
    assert newest.loc["stub-dead · Predict", "run_id"] == "r4"


def test_every_failure_kind_has_words_and_sentences_quote_an_example():
    assert set(failures.WORDS) == set(FAILURE_KINDS)
    assert failures.kind_sentence("parse", 30, "Sure! The answer is probably\nbilling, or maybe refund") == (
        "30 answers were not one of your labels, e.g. 'Sure! The answer is probably billing, or maybe refund'")
    assert failures.kind_sentence("parse", 1) == "1 answer was not one of your labels"
    assert failures.kind_sentence("unreachable", 9) == "9 examples got no answer: the server could not be reached"
    assert failures.counts_text({"timeout": 2, "parse": 30}) == "30 not a label, 2 timed out"
    records = pd.DataFrame({"idx": [0, 1, 2], "text": ["a", "b", "c"], "gold": ["x", "y", "x"],
                            "outcome": ["failed", "correct", "failed"], "error_kind": ["parse", None, "timeout"],
                            "raw_output": ["I think x?", None, None], "error": ["unparsed", None, "timed out"]})
    examples = failures.failure_examples(records)
    assert examples["answer or error"].tolist() == ["I think x?", "timed out"]
    assert failures.first_examples(examples) == {"parse": "I think x?", "timeout": "timed out"}
    assert failures.failure_sentences({"parse": 1, "timeout": 1}, failures.first_examples(examples))[0] == (
        "1 answer was not one of your labels, e.g. 'I think x?'")
    assert failures.failure_examples(None).empty


def _parse_error() -> str:
    import dspy
    from dspy.utils.exceptions import AdapterParseError

    sig = dspy.Signature("basic_instruction -> proposed_instruction")
    return f"AdapterParseError: {AdapterParseError('JSONAdapter', sig, 'I would rather not.')}"


def test_a_raw_parse_error_is_said_in_words_and_resume_is_offered_only_where_it_helps():
    raw = _parse_error()
    assert failures.error_kind(raw) == "parse" and failures.reflection_parse_failure(raw)
    text = failures.job_error_text(raw)
    assert "AdapterParseError" not in text and "reflection model's answer could not be read" in text
    assert "'I would rather not.'" in text
    assert failures.job_error_text("cancelled by the user") == "cancelled by the user"
    breaker = "stub: stopped after the first 5 calls all failed (last: auth: 401 bad key)."
    assert failures.error_kind(breaker) == "auth"
    assert not failures.resume_can_help("failed", raw) and not failures.resume_can_help("failed", breaker)
    assert failures.resume_can_help("failed", breaker.replace("auth", "unreachable"))
    assert failures.resume_can_help("interrupted", None) and failures.resume_can_help("cancelled", raw)
    assert "would fail the same way (key rejected)" in failures.resume_refusal(breaker)


def _records(n: int, right: range | set) -> pd.DataFrame:
    return pd.DataFrame({"idx": range(n), "text": [f"t{i}" for i in range(n)], "gold": "x",
                         "predicted": ["x" if i in right else "y" for i in range(n)],
                         "correct": [i in right for i in range(n)]})


@pytest.mark.parametrize("a, b", [(range(20), range(40)), (range(20), range(24))])
def test_the_verdict_and_the_report_say_the_same_number_of_examples(a, b):
    v = verdict(_records(50, a), _records(50, b), "original", "Optimized")
    phrase = stats.needed_phrase(v.n, v.needed_n)
    assert phrase and phrase in v.sentence
    assert phrase in verdict_table([v])  # the report's "n to tell apart" cell is the verdict's own words
    assert "are enough" not in v.sentence or f"about {v.needed_n:,} would show" in v.sentence
