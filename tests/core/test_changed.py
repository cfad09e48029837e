"""The examples whose score changed most between two runs (core.analytics.changed) on hand-made records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.analytics.changed import CHANGED_COLUMNS, changed_examples, readable
from core.config.errors import ConfigError


def records(scores: list[float | None], outcomes: list[str] | None = None, predicted: list[str] | None = None,
            **columns: list) -> pd.DataFrame:
    """A records.csv frame: one row per example, ``correct`` where the score is 1."""
    n = len(scores)
    return pd.DataFrame({
        "idx": list(range(n)), "text": columns.get("text", [f"sentence {i}" for i in range(n)]),
        "gold": columns.get("gold", [f"gold {i}" for i in range(n)]),
        "predicted": predicted or [f"answer {i}" for i in range(n)],
        "correct": [s == 1.0 for s in scores], "outcome": outcomes or ["partial"] * n, "score": scores,
        **{k: v for k, v in columns.items() if k not in ("text", "gold")},
    })


def test_largest_change_first_either_way_unchanged_left_out():
    a = records([0.2, 0.5, 1.0, 0.0, 0.7])
    b = records([0.9, 0.5, 0.1, 0.3, 0.6])
    out = changed_examples(a, b)
    assert list(out.columns) == CHANGED_COLUMNS
    assert list(out["idx"]) == [2, 0, 3, 4]  # -0.9, +0.7, +0.3, -0.1; idx 1 did not change
    assert out["change"].tolist() == pytest.approx([-0.9, 0.7, 0.3, -0.1])
    assert out.loc[0, ["score_a", "score_b"]].tolist() == pytest.approx([1.0, 0.1])
    assert out.loc[0, "text"] == "sentence 2" and out.loc[0, "predicted_b"] == "answer 2"


def test_ties_go_by_idx_and_limit_keeps_the_largest():
    a = records([0.0, 0.0, 0.0, 0.5])
    b = records([0.5, 0.5, 0.5, 0.0])
    out = changed_examples(a, b, limit=2)
    assert list(out["idx"]) == [0, 1]
    assert len(changed_examples(a, b, limit=10)) == 4
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="limit"):
            changed_examples(a, b, limit=bad)


def test_a_failed_example_scores_zero_and_says_why():
    a = records([0.8, 0.4])
    b = records([None, 0.4], outcomes=["failed", "partial"], predicted=["", "answer 1"],
                error_kind=["timeout", None], error=["read timed out", None])
    out = changed_examples(a, b)
    assert list(out["idx"]) == [0]
    assert out.loc[0, "score_b"] == 0.0 and out.loc[0, "change"] == pytest.approx(-0.8)
    assert out.loc[0, "predicted_b"] == "(failed: timeout: read timed out)"


def test_several_output_json_cells_read_as_fields():
    gold = json.dumps({"drug": "naltrexone", "dose": "50 mg", "condition": "alcohol use disorder"})
    a = records([0.5], predicted=[json.dumps({"drug": "naltrexone 50", "dose": "50", "condition": ""})], gold=[gold],
                text=[json.dumps({"context": "A trial.", "question": "Which drug?"})])
    b = records([1.0], predicted=[gold], gold=[gold], text=list(a["text"]))
    row = changed_examples(a, b).iloc[0]
    assert row["gold"] == "drug: naltrexone; dose: 50 mg; condition: alcohol use disorder"
    assert row["predicted_a"] == "drug: naltrexone 50; dose: 50; condition: "
    assert row["text"] == "context: A trial.; question: Which drug?"
    assert readable('{"tags": ["a", "b"]}') == 'tags: ["a", "b"]'
    assert readable("{not json") == "{not json" and readable(float("nan")) == "" and readable("[1, 2]") == "[1, 2]"


def test_records_without_scores_count_right_as_one():
    """Classification records (no score column): 1 when correct, 0 otherwise."""
    a = records([1.0, 0.0]).drop(columns="score")
    b = records([0.0, 0.0]).drop(columns="score")
    out = changed_examples(a, b)
    assert list(out["idx"]) == [0] and out.loc[0, "change"] == -1.0


def test_other_examples_or_no_records_raise():
    with pytest.raises(ConfigError, match="same examples"):
        changed_examples(records([0.1, 0.2]), records([0.1, 0.2, 0.3]))
    with pytest.raises(ConfigError, match="no per-example records"):
        changed_examples(records([0.1]), pd.DataFrame())
    assert changed_examples(records([0.3, 0.3]), records([0.3, 0.3])).empty
