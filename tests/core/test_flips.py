"""Flipped examples between two runs on the same examples, their CSV download, and prompt growth."""

from __future__ import annotations

import io
import math
from dataclasses import asdict

import pandas as pd
import pytest

from core.analytics import flips
from core.analytics.export import neutralize_formulas, restore_formulas
from core.config.errors import ConfigError
from core.evaluation.evaluate import EvalRecord

LINK = '=HYPERLINK("http://evil.example","click")'


def run(outcomes: dict[int, tuple[str, bool]], texts: dict[int, str] | None = None) -> pd.DataFrame:
    """records.csv of one run: idx -> (prediction, correct) over examples whose gold is "pos" when idx is even."""
    rows = []
    for idx, (predicted, correct) in outcomes.items():
        gold = "pos" if idx % 2 == 0 else "neg"
        text = (texts or {}).get(idx, f"sentence {idx}")
        if predicted == "FAILED":
            rec = EvalRecord(idx=idx, text=text, gold=gold, outcome="failed", error="HTTP 429 Too Many Requests",
                             error_kind="rate_limit")
        elif predicted == "UNPARSED":
            rec = EvalRecord(idx=idx, text=text, gold=gold, outcome="wrong", raw_output="I think it is positive?")
        else:
            rec = EvalRecord(idx=idx, text=text, gold=gold, predicted=predicted, correct=correct,
                             outcome="correct" if correct else "wrong")
        rows.append(asdict(rec))
    return pd.DataFrame(rows)


def csv_round_trip(frame: pd.DataFrame) -> pd.DataFrame:
    """As an artifact comes back from disk: None as NaN, booleans as booleans."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


TEXTS = {2: LINK, 3: "+1 for the new drug", 5: "-- dash"}
BEFORE = run({0: ("pos", True), 1: ("pos", False), 2: ("neg", False), 3: ("neg", True), 4: ("UNPARSED", False),
              5: ("neg", True), 6: ("pos", True)}, TEXTS)
AFTER = run({6: ("pos", True), 5: ("FAILED", False), 4: ("pos", True), 3: ("neg", True), 2: ("pos", True),
             1: ("neg", True), 0: ("neg", False)}, TEXTS)  # another row order: matched by idx


def test_flipped_lists_wrong_to_right_then_right_to_wrong_with_both_answers():
    out = flips.flipped(csv_round_trip(BEFORE), csv_round_trip(AFTER))
    assert list(out.columns) == flips.FLIP_COLUMNS
    assert out[["idx", "change"]].values.tolist() == [
        [1, "wrong → right"], [2, "wrong → right"], [4, "wrong → right"], [0, "right → wrong"], [5, "right → wrong"]]
    one = out.set_index("idx").loc[1]
    assert (one["gold"], one["predicted_a"], one["predicted_b"], one["text"]) == ("neg", "pos", "neg", "sentence 1")
    unparsed = out.set_index("idx").loc[4]
    assert unparsed["predicted_a"] == "" and unparsed["raw_a"] == "I think it is positive?" and unparsed["raw_b"] == ""
    failed = out.set_index("idx").loc[5]
    assert failed["raw_b"] == "(failed: rate_limit: HTTP 429 Too Many Requests)" and failed["predicted_b"] == ""
    # Filtering by label is a plain filter on gold; the same runs the other way round swap the changes.
    assert out[out["gold"] == "pos"]["idx"].tolist() == [2, 4, 0]
    back = flips.flipped(AFTER, BEFORE)
    assert sorted(back[back["change"] == "right → wrong"]["idx"]) == [1, 2, 4]


def test_flipped_csv_neutralises_formula_cells():
    """records.csv as the store writes and reads it (formula cells neutralised, then restored), then downloaded:
    the HYPERLINK text is inert in the file and reads back as text."""
    a, b = (restore_formulas(pd.read_csv(io.StringIO(neutralize_formulas(f).to_csv(index=False))))
            for f in (BEFORE, AFTER))
    assert a.set_index("idx").loc[2, "text"] == LINK  # read back as it was
    out = flips.flipped(a, b)
    data = flips.to_csv_bytes(out)
    text = data.decode("utf-8")
    assert "'=HYPERLINK(" in text and ",=HYPERLINK" not in text and '"=HYPERLINK' not in text
    cells = pd.read_csv(io.BytesIO(data), keep_default_na=False).set_index("idx")
    assert cells.loc[2, "text"] == "'" + LINK
    assert cells.loc[5, "text"] == "'-- dash"
    assert not any(str(v).startswith(("=", "+", "@")) for v in cells.to_numpy().ravel())
    assert flips.to_csv_bytes(out.iloc[0:0]).decode().strip() == ",".join(flips.FLIP_COLUMNS)


def test_flipped_refuses_runs_on_different_examples():
    other = run({i: ("pos", True) for i in range(10, 17)})
    with pytest.raises(ConfigError, match="same examples") as err:
        flips.flipped(BEFORE, other)
    assert err.value.hint
    with pytest.raises(ConfigError, match="differ"):
        flips.flipped(BEFORE, AFTER.assign(text="another text"))
    with pytest.raises(ConfigError, match="records"):
        flips.flipped(BEFORE, pd.DataFrame())
    assert flips.flipped(BEFORE, BEFORE).empty


def test_prompt_growth_from_two_evaluations_metrics():
    before = {"input_tokens": 12_000.0, "lm_calls": 100.0, "n": 100.0, "cost_per_1k": 0.84}
    after = {"input_tokens": 66_000.0, "lm_calls": 110.0, "n": 100.0, "cost_per_1k": 4.62}
    g = flips.prompt_growth(before, after)
    assert g["input_tokens_per_call_before"] == 120.0 and g["input_tokens_per_call_after"] == 600.0
    assert g["ratio"] == 5.0
    assert (g["cost_per_1k_before"], g["cost_per_1k_after"]) == (0.84, 4.62)
    assert g["cost_per_1k_change"] == pytest.approx(3.78)
    old = flips.prompt_growth({"input_tokens": 500, "n": 5}, {})  # no lm_calls: one call per prediction
    assert old["input_tokens_per_call_before"] == 100.0
    assert all(math.isnan(old[k]) for k in ("input_tokens_per_call_after", "ratio", "cost_per_1k_change"))
