"""An optimization's break-even and seed spread in the report, as Compare shows them: when the optimized student pays
for itself against a reference model (the one picked on screen, else the most expensive usable evaluation in the
report), and, for an optimization repeated with other seeds, where this seed lies among them. A task scored in
[0, 1] compares the mean scores (its metric named) where classification compares accuracies."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.analytics import charts
from core.analytics.failures import failed_runs
from core.analytics.flips import aligned_records, require_records, scores_of
from core.analytics.scores import compare_scores, mean_interval
from core.analytics.stats import trade_off
from core.config.errors import ConfigError, StudioError
from core.report import data, scored
from core.report.page import Figures, para
from core.tracking.runs import seed_note, seed_spread, spread_sentence

logger = logging.getLogger(__name__)


def reference_of(opt: data.Optimization, evaluations: Sequence[data.RunInfo], picked: str | None = None
                 ) -> data.RunInfo | None:
    """The reference model's evaluation: ``picked`` when the report has it, else the most expensive evaluation
    that did not fail (``failures.failed_runs``), other than the optimization's own two."""
    own = {e.run_id for e in (opt.original, opt.optimized) if e is not None}
    pool = [e for e in evaluations if e.run_id not in own and _cost(e) is not None]
    if picked and (chosen := next((e for e in pool if e.run_id == picked), None)):
        return chosen
    usable = [e for e in pool if not _failed(e)]
    return max(usable, key=lambda e: _cost(e) or 0.0, default=None)


def _cost(info: data.RunInfo) -> float | None:
    value = info.row.get("cost_per_1k", info.metrics.get("cost_per_1k"))
    return None if value is None or pd.isna(value) else float(value)


def break_even(reader: data.Reader, opt: data.Optimization, reference: data.RunInfo | None, figs: Figures,
               metric: str = scored.ACCURACY) -> str:
    """"When does the optimization pay for itself?": the break-even chart and its headline, or why there is none;
    ``metric``: what the optimization's runs are scored by, as tagged (a reference scored otherwise is not
    compared)."""
    head = "<h3>When does the optimization pay for itself?</h3>"
    spent = opt.info.metrics.get("optimization_cost_usd")
    if opt.optimized is None or reference is None or spent is None or _cost(opt.optimized) is None:
        return head + para("No break-even: the report needs the optimized program's test evaluation, what the "
                           "optimization spent and a reference model's evaluation (add one to the report).", "note")
    ref_records, opt_records = reader.records(reference), reader.records(opt.optimized)
    accuracy, failed = None, _failed(reference)
    comparable = metric == scored.ACCURACY or scored.metric_of(reference.tags) == metric
    shown = scored.metric_name(metric)
    if not failed and comparable and ref_records is not None and opt_records is not None:
        try:
            accuracy = (trade_off(ref_records, opt_records) if metric == scored.ACCURACY
                        else score_trade_off(ref_records, opt_records, shown))
        except StudioError as exc:
            logger.info("No accuracy trade-off for %s: %s", opt.info.run_id, exc)
    ref_label = str(reference.row.get("label") or reference.row.get("model") or reference.run_id[:8])
    model = opt.optimized.row.get("model") or "student"
    fig = charts.break_even_chart(float(spent), float(_cost(reference) or 0.0), float(_cost(opt.optimized) or 0.0),
                                  labels=(ref_label, f"{model} · optimized (incl. optimization)"), trade_off=accuracy,
                                  metric=shown)
    note = (f" It failed on this task: its {'accuracy' if metric == scored.ACCURACY else 'score'} is not the model's, "
            "so none is compared." if failed else "")
    return head + para(f"Against {ref_label} (run {reference.run_id[:8]}).{note}") + figs.add(fig)


def score_trade_off(reference_records: pd.DataFrame, optimized_records: pd.DataFrame,
                    metric: str) -> dict[str, Any]:
    """``stats.trade_off`` for a task scored in [0, 1]: the mean scores (``accuracy_reference`` /
    ``accuracy_optimized``) compared by ``scores.compare_scores`` on the same examples, else as two independent
    samples (the two means' intervals combined, no test)."""
    for name, frame in (("reference", reference_records), ("optimized", optimized_records)):
        require_records(frame, name)
    try:
        a, b = aligned_records(reference_records, optimized_records)
    except ConfigError:  # other examples: two independent samples
        ref, opt = scores_of(reference_records), scores_of(optimized_records)
        (low_r, high_r), (low_o, high_o) = mean_interval(ref), mean_interval(opt)
        mean_r, mean_o = sum(ref) / len(ref), sum(opt) / len(opt)
        diff = mean_o - mean_r
        return {"diff": diff, "ci_low": diff - math.hypot(mean_o - low_o, high_r - mean_r),
                "ci_high": diff + math.hypot(high_o - mean_o, mean_r - low_r), "p_value": None, "needed_n": None,
                "significant": False, "n": len(opt), "n_reference": len(ref), "n_optimized": len(opt),
                "paired": False, "worse": False, "accuracy_reference": mean_r, "accuracy_optimized": mean_o,
                "test": "", "metric": metric}
    c = compare_scores(scores_of(a), scores_of(b), metric=metric)
    significant = bool(c["significant"])
    return {"diff": c["diff"], "ci_low": float(c["ci_low"]), "ci_high": float(c["ci_high"]),
            "p_mcnemar": float(c["p_mcnemar"]), "p_value": c["p_value"], "needed_n": c["needed_n"],
            "significant": significant, "n": c["n"], "n_reference": c["n"], "n_optimized": c["n"], "paired": True,
            "worse": significant and c["ci_high"] < 0, "accuracy_reference": c["accuracy_a"],
            "accuracy_optimized": c["accuracy_b"], "test": c["test"], "metric": metric}


def _failed(info: data.RunInfo) -> bool:
    row = {**info.row, **{k: info.metrics[k] for k in ("failure_rate",) if k in info.metrics}}
    return bool(failed_runs(pd.DataFrame([row])).iloc[0])


def seeds(reader: data.Reader, opt: data.Optimization, figs: Figures) -> str:
    """The seed spread of this optimization's repeat (the same setup with other seeds), or "" when not repeated."""
    task = opt.info.row.get("task")
    try:
        spread = seed_spread(reader.store.list_runs(task=str(task) if task else None))
    except StudioError as exc:
        logger.warning("No seed spread for %s: %s", opt.info.run_id, exc)
        return ""
    note = seed_note(spread, opt.info.run_id)
    if note is None:
        return ""
    key = str(spread.loc[spread["run_id"] == opt.info.run_id, "repeat_key"].iloc[0])
    mine = spread[spread["repeat_key"] == key]
    return ("<h3>Seed spread</h3>" + para(note, "verdict") + para(spread_sentence(spread, key))
            + figs.add(charts.seed_spread_chart(mine)))
