"""Two runs on the same examples: matching their records, the examples that flipped, and prompt growth.

Pure functions over the ``records.csv`` frames of evaluations (columns of ``core.evaluation.evaluate.EvalRecord``) and
their metrics; nothing here reads the store.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import pandas as pd

from core.analytics.export import neutralize_formulas
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

Change = Literal["wrong → right", "right → wrong"]
WRONG_TO_RIGHT: Change = "wrong → right"
RIGHT_TO_WRONG: Change = "right → wrong"
FLIP_COLUMNS = ["idx", "change", "gold", "predicted_a", "predicted_b", "text", "raw_a", "raw_b"]
SAME_SPLIT_HINT = ("Compare runs scored on the same test split: the original and optimized evaluations of one "
                   "optimization, or baselines of the same task, sizes and seed.")


def flags(values: Iterable[Any]) -> list[bool]:
    """Right/wrong flags from a ``correct`` column (booleans, or "True"/"False" text as read from a CSV)."""
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.strip().lower() in ("true", "1", "yes"))
        else:
            out.append(bool(v) if v == v else False)
    return out


def scores_of(frame: pd.DataFrame) -> list[float]:
    """Each example's score in [0, 1] from a records table: its metric's ``score``; a failed example 0 (as accuracy
    counts it wrong); records without scores (classification, or from before scores): 1 when correct, else 0."""
    correct = pd.Series(flags(frame["correct"]), index=frame.index, dtype=float)
    if "score" not in frame:
        return correct.tolist()
    score = pd.to_numeric(frame["score"], errors="coerce")
    failed = frame["outcome"].eq("failed") if "outcome" in frame else pd.Series(False, index=frame.index)
    return score.where(score.notna(), correct).where(~failed, 0.0).astype(float).tolist()


def require_records(frame: pd.DataFrame | None, name: str) -> None:
    """Raise a ConfigError unless ``frame`` is a non-empty records table (it has a ``correct`` column)."""
    if frame is None or "correct" not in frame or frame.empty:
        raise ConfigError(f"The {name} run has no per-example records to compare.",
                          "Pick a finished evaluation; its records.csv lists one row per example.")


def aligned_records(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The records of a and b on the same examples, in a's order, both indexed by ``idx`` (an example's last
    record when it repeats); without ``idx`` on both, row by row. Raises ConfigError when the runs did not score
    the same examples (other indexes, other row counts, or another ``gold``/``text`` at the same index)."""
    if "idx" in a and "idx" in b:
        a = a.drop_duplicates("idx", keep="last").set_index("idx")
        b = b.drop_duplicates("idx", keep="last").set_index("idx")
        shared = len(set(a.index) & set(b.index))
        if shared != len(a) or shared != len(b):
            raise ConfigError(f"The two runs were not scored on the same examples ({len(a)} and {len(b)} examples, "
                              f"{shared} shared).", SAME_SPLIT_HINT)
        b = b.loc[a.index]
    elif len(a) != len(b):
        raise ConfigError(f"The two runs were not scored on the same examples ({len(a)} and {len(b)} records).",
                          SAME_SPLIT_HINT)
    else:
        a, b = a.reset_index(drop=True).rename_axis("idx"), b.reset_index(drop=True).rename_axis("idx")
    for col in ("gold", "text"):
        if col in a and col in b and not (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all():
            raise ConfigError(f"The two runs' examples differ (another {col} at the same index).", SAME_SPLIT_HINT)
    return a, b


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def or_failure(row: Mapping[str, Any], shown: str) -> str:
    """``shown`` (what a record says the model wrote), or, for an example that failed without it, why it failed."""
    if shown or _text(row.get("outcome")) != "failed":
        return shown
    kind, error = _text(row.get("error_kind")) or "other", _text(row.get("error"))
    return f"(failed: {kind}{': ' + error if error else ''})"


def _raw(row: Mapping[str, Any]) -> str:
    """What the model wrote when it could not be parsed, or why the example failed; "" otherwise."""
    return or_failure(row, _text(row.get("raw_output")))


def flipped(records_a: pd.DataFrame, records_b: pd.DataFrame) -> pd.DataFrame:
    """The examples one run gets right and the other wrong, going from a to b: ``change`` is "wrong → right" (b
    fixed it) or "right → wrong" (b broke it), with the example's text and gold label, both predictions and both
    raw outputs (or why the example failed). Sorted by change, then idx. Raises ConfigError unless both runs
    scored the same examples."""
    require_records(records_a, "first")
    require_records(records_b, "second")
    a, b = aligned_records(records_a, records_b)
    right_a, right_b = flags(a["correct"]), flags(b["correct"])
    rows = []
    for (idx, ra), (_, rb), ok_a, ok_b in zip(a.iterrows(), b.iterrows(), right_a, right_b, strict=True):
        if ok_a == ok_b:
            continue
        rows.append({"idx": idx, "change": WRONG_TO_RIGHT if ok_b else RIGHT_TO_WRONG, "gold": _text(ra.get("gold")),
                     "predicted_a": _text(ra.get("predicted")), "predicted_b": _text(rb.get("predicted")),
                     "text": _text(ra.get("text", rb.get("text"))), "raw_a": _raw(ra), "raw_b": _raw(rb)})
    out = pd.DataFrame(rows, columns=FLIP_COLUMNS)
    if out.empty:
        return out
    order = {WRONG_TO_RIGHT: 0, RIGHT_TO_WRONG: 1}
    return out.sort_values(["change", "idx"], key=lambda s: s.map(order) if s.name == "change" else s,
                           kind="stable", ignore_index=True)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as UTF-8 CSV for a download, cells a spreadsheet would run as formulas neutralised (see
    ``core.analytics.export``)."""
    return neutralize_formulas(frame).to_csv(index=False).encode("utf-8")


def _number(metrics: Mapping[str, Any], key: str) -> float:
    try:
        value = float(metrics.get(key, math.nan))
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _per_call(metrics: Mapping[str, Any]) -> float:
    tokens, calls = _number(metrics, "input_tokens"), _number(metrics, "lm_calls")
    if not calls > 0:  # an older run without lm_calls: one call per prediction
        calls = _number(metrics, "n")
    return tokens / calls if calls > 0 else math.nan


def prompt_growth(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, float]:
    """What optimization did to the prompt, from two evaluation runs' metrics (``input_tokens``, ``lm_calls``, ``n``,
    ``cost_per_1k``): input tokens per call before and after, their ``ratio`` (after / before) and the cost per
    1,000 predictions before, after and its change (after - before, USD). Missing numbers give NaN."""
    tokens_before, tokens_after = _per_call(before), _per_call(after)
    cost_before, cost_after = _number(before, "cost_per_1k"), _number(after, "cost_per_1k")
    return {
        "input_tokens_per_call_before": tokens_before,
        "input_tokens_per_call_after": tokens_after,
        "ratio": tokens_after / tokens_before if tokens_before > 0 else math.nan,
        "cost_per_1k_before": cost_before,
        "cost_per_1k_after": cost_after,
        "cost_per_1k_change": cost_after - cost_before,
    }
