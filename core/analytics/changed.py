"""Two runs on the same examples, for a task scored in [0, 1]: the examples whose score changed most.

Classification has its flipped examples (``core.analytics.flips.flipped``: right one way, wrong the other). A task
scored by token F1, set F1 or a judge rarely flips cleanly: an answer goes from 0.4 to 0.9. The examples worth
reading are those that moved most, either way. Pure functions over ``records.csv`` frames; nothing reads the store.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from core.analytics.flips import aligned_records, or_failure, require_records, scores_of
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

CHANGED_COLUMNS = ["idx", "text", "gold", "predicted_a", "predicted_b", "score_a", "score_b", "change"]
TOLERANCE = 1e-9  # a change smaller than this is float noise, not a change


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def readable(value: object) -> str:
    """A records cell as a person reads it: a JSON object (several inputs or outputs) as "field: value; field:
    value", anything else as its text ("" for a missing cell)."""
    text = _text(value)
    if not text.startswith("{"):
        return text
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if not isinstance(parsed, dict):
        return text
    return "; ".join(f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                     for k, v in parsed.items())


def _answer(row: Mapping[str, Any]) -> str:
    """What the program answered, or, for an example that failed without an answer, why it failed."""
    return or_failure(row, readable(row.get("predicted")))


def changed_examples(records_a: pd.DataFrame, records_b: pd.DataFrame, limit: int = 10) -> pd.DataFrame:
    """The ``limit`` examples whose score changed most from run a to run b (columns CHANGED_COLUMNS).

    Scores are ``flips.scores_of`` (a failed example scores 0, as accuracy counts it wrong); ``change`` is
    score_b - score_a; rows are ordered by the size of the change, largest first, then by idx; examples whose score
    did not change are left out. Cells holding JSON objects (several inputs or outputs) read "field: value; ...".
    Raises ConfigError unless both runs scored the same examples (``flips.aligned_records``)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive number of examples, got {limit!r}.", "E.g. limit=10.")
    require_records(records_a, "first")
    require_records(records_b, "second")
    a, b = aligned_records(records_a, records_b)
    rows = []
    for (idx, ra), (_, rb), score_a, score_b in zip(a.iterrows(), b.iterrows(), scores_of(a), scores_of(b),
                                                    strict=True):
        if abs(score_b - score_a) <= TOLERANCE:
            continue
        rows.append({"idx": idx, "text": readable(ra.get("text", rb.get("text"))), "gold": readable(ra.get("gold")),
                     "predicted_a": _answer(ra), "predicted_b": _answer(rb), "score_a": score_a, "score_b": score_b,
                     "change": score_b - score_a})
    out = pd.DataFrame(rows, columns=CHANGED_COLUMNS)
    if out.empty:
        return out
    out = out.assign(_size=out["change"].abs()).sort_values(["_size", "idx"], ascending=[False, True], kind="stable")
    return out.drop(columns="_size").head(limit).reset_index(drop=True)
