"""An optimization's break-even and seed spread in the report, as Compare shows them: when the optimized student pays
for itself against a reference model (the one picked on screen, else the most expensive usable evaluation in the
report), and, for an optimization repeated with other seeds, where this seed lies among them."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from core.analytics import charts
from core.analytics.failures import failed_runs
from core.analytics.stats import trade_off
from core.config.errors import StudioError
from core.report import data
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


def break_even(reader: data.Reader, opt: data.Optimization, reference: data.RunInfo | None, figs: Figures) -> str:
    """"When does the optimization pay for itself?": the break-even chart and its headline, or why there is none."""
    head = "<h3>When does the optimization pay for itself?</h3>"
    spent = opt.info.metrics.get("optimization_cost_usd")
    if opt.optimized is None or reference is None or spent is None or _cost(opt.optimized) is None:
        return head + para("No break-even: the report needs the optimized program's test evaluation, what the "
                           "optimization spent and a reference model's evaluation (add one to the report).", "note")
    ref_records, opt_records = reader.records(reference), reader.records(opt.optimized)
    accuracy, failed = None, _failed(reference)
    if not failed and ref_records is not None and opt_records is not None:
        try:
            accuracy = trade_off(ref_records, opt_records)
        except StudioError as exc:
            logger.info("No accuracy trade-off for %s: %s", opt.info.run_id, exc)
    ref_label = str(reference.row.get("label") or reference.row.get("model") or reference.run_id[:8])
    model = opt.optimized.row.get("model") or "student"
    fig = charts.break_even_chart(float(spent), float(_cost(reference) or 0.0), float(_cost(opt.optimized) or 0.0),
                                  labels=(ref_label, f"{model} · optimized (incl. optimization)"), trade_off=accuracy)
    note = " It failed on this task: its accuracy is not the model's, so none is compared." if failed else ""
    return head + para(f"Against {ref_label} (run {reference.run_id[:8]}).{note}") + figs.add(fig)


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
