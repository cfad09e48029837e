"""What the report shows for a task scored in [0, 1] (token F1, numeric, set F1, a judge) rather than right/wrong:
the score named by its metric with its interval, the accuracy (all answers right) beside it, the per-field scores of
each output, and the examples whose score changed most.

A run says how it is scored in its tag ``studio.metric``; runs made before that tag (and every classification run)
are scored by accuracy, and keep every view they had.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from core.analytics.changed import changed_examples
from core.analytics.charts.scores import metric_name
from core.analytics.flips import aligned_records, scores_of
from core.config.errors import StudioError
from core.report import data
from core.report.page import Column, facts, missing, num, para, pct, table
from core.tracking.store import TAG

logger = logging.getLogger(__name__)

__all__ = ["ACCURACY", "changed", "field_scores", "field_table", "headline", "metric_name", "metric_of",
           "output_order", "run_metric", "score_of", "score_text"]

ACCURACY = "accuracy"
METRIC_TAG = f"{TAG}metric"
FIELD_PREFIX = "score_field_"
MAX_CHANGED = 20  # examples listed under "score changed most"


def metric_of(tags: Mapping[str, str] | None) -> str:
    """The metric a run is scored by, as tagged ("token F1", "weighted: drug token F1, dose token F1"); "accuracy"
    for classification and for runs made before runs were tagged with it. Screens say ``metric_name`` of it
    ("token F1" for several outputs scored alike)."""
    return str((tags or {}).get(METRIC_TAG) or ACCURACY)


def run_metric(*infos: data.RunInfo | None) -> str:
    """The metric of the first of ``infos`` that has one tagged (an optimization's, else its evaluations')."""
    for info in infos:
        if info is not None and info.tags.get(METRIC_TAG):
            return metric_of(info.tags)
    return ACCURACY


def field_scores(metrics: Mapping[str, float], order: Sequence[str] = ()) -> dict[str, float]:
    """Each output field's mean score (the ``score_field_<field>`` metrics of an evaluation), in ``order`` (the
    task's, see :func:`output_order`) then by name; {} for a task with one output."""
    found = {k[len(FIELD_PREFIX):]: float(v) for k, v in metrics.items() if k.startswith(FIELD_PREFIX)}
    rank = {name: i for i, name in enumerate(order)}
    return {k: found[k] for k in sorted(found, key=lambda k: (rank.get(k, len(rank)), k))}


def output_order(records: pd.DataFrame | None) -> list[str]:
    """The output fields in the task's order: the keys of the first expected answer in a run's records (several
    outputs are a JSON object there); [] when it has none."""
    if records is None or "gold" not in records or records.empty:
        return []
    try:
        gold = json.loads(str(records["gold"].iloc[0]))
    except ValueError:
        return []
    return [str(k) for k in gold] if isinstance(gold, dict) else []


def score_of(metrics: Mapping[str, float]) -> float | None:
    """The mean score, else the accuracy (a run from before scores: they are the same for right/wrong)."""
    value = metrics.get("score", metrics.get("accuracy"))
    return None if missing(value) else float(value)


def score_text(metrics: Mapping[str, float]) -> str:
    """"0.672 (95 % CI 0.579–0.753)", or "–" without a score."""
    value = score_of(metrics)
    if value is None:
        return "–"
    low, high = metrics.get("score_ci_low"), metrics.get("score_ci_high")
    return f"{value:.3f}" + ("" if missing(low) or missing(high) else f" (95 % CI {low:.3f}–{high:.3f})")


def headline(opt: data.Optimization, metric: str) -> str:
    """Score original → optimized on the test set, named by the metric, with the accuracy (all answers right)
    beside it: from the test evaluations' metrics, else the optimization's own."""
    m = opt.info.metrics
    if opt.original is not None and opt.optimized is not None:
        score = f"{score_text(opt.original.metrics)} → {score_text(opt.optimized.metrics)}"
        right = f"{pct(opt.original.metrics.get('accuracy'))} → {pct(opt.optimized.metrics.get('accuracy'))}"
    else:
        score = f"{num(m.get('original_test_score'), 3)} → {num(m.get('optimized_test_score'), 3)}"
        right = f"{pct(m.get('original_test_accuracy'))} → {pct(m.get('optimized_test_accuracy'))}"
    return facts([(f"Score ({metric})", score), ("All answers right (accuracy)", right)])


def field_table(before: Mapping[str, float], after: Mapping[str, float], metric: str) -> str:
    """The per-field scores of the original and optimized programs ("" for a task with one output)."""
    fields = list(dict.fromkeys([*before, *after]))
    if not fields:
        return ""
    rows = [{"field": f, "a": before.get(f), "b": after.get(f),
             "diff": None if f not in before or f not in after else after[f] - before[f]} for f in fields]
    return ("<h3>Score per output field</h3>"
            + para(f"Each output's mean score on the test set ({metric}); the example's score weighs them.")
            + table(pd.DataFrame(rows), [
                Column("field", "field"), Column("a", "original", lambda v: num(v, 3), True),
                Column("b", "optimized", lambda v: num(v, 3), True),
                Column("diff", "change", _signed, True)]))


def _signed(value: object) -> str:
    return "–" if missing(value) else f"{float(value):+.3f}".replace("-", "−")


def changed(before: pd.DataFrame, after: pd.DataFrame, names: tuple[str, str] = ("original", "optimized")) -> str:
    """The examples whose score changed most from ``before`` to ``after`` (the same examples), largest first."""
    head = "<h3>Examples whose score changed most</h3>"
    try:
        frame = changed_examples(before, after, MAX_CHANGED)
        deltas = pd.Series(score_changes(before, after))
    except StudioError as exc:
        return head + para(f"No changed examples: {exc}", "note")
    up, down = int((deltas > 1e-9).sum()), int((deltas < -1e-9).sum())
    text = (f"{up} examples scored higher with the {names[1]} program and {down} lower; the other "
            f"{len(deltas) - up - down} kept their score (mean change {_signed(deltas.mean())}).")
    if frame.empty:
        return head + para(text)
    return head + para(text) + table(frame, [
        Column("idx", "example"), Column("score_a", names[0], lambda v: num(v, 3), True),
        Column("score_b", names[1], lambda v: num(v, 3), True), Column("change", "change", _signed, True),
        Column("gold", "expected"), Column("predicted_a", f"{names[0]} predicted"),
        Column("predicted_b", f"{names[1]} predicted"), Column("text", "input")])


def score_changes(before: pd.DataFrame, after: pd.DataFrame) -> list[float]:
    """Each example's score after minus before, matched as ``flips.aligned_records`` matches them."""
    a, b = aligned_records(before, after)
    return [y - x for x, y in zip(scores_of(a), scores_of(b), strict=True)]
