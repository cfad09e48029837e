"""The evaluations' part of the report: a table, accuracy bars, accuracy against cost, the per-label F1 heatmap,
confusion matrices and the verdict of each pair of runs scored on the same examples."""

from __future__ import annotations

import logging
from itertools import combinations

import pandas as pd

from core.analytics import charts
from core.analytics.verdict import verdict
from core.config.errors import StudioError
from core.report import data
from core.report.optimization import verdict_table
from core.report.page import Column, Figures, esc, num, para, pct, table, usd
from core.tracking.runs import chart_frame, per_label_frame

logger = logging.getLogger(__name__)

MAX_PAIRS = 45  # verdicts listed (ten runs: every pair)


def labels(frame: pd.DataFrame) -> dict[str, str]:
    """run_id → its chart label, made unique with the short run id where two runs share one."""
    counts = frame["label"].value_counts()
    return {str(r["run_id"]): r["label"] + (f" · {str(r['run_id'])[:8]}" if counts[r["label"]] > 1 else "")
            for r in frame.to_dict("records")}


def section(reader: data.Reader, report: data.ReportData, figs: Figures, skip_pairs: set[frozenset[str]]) -> str:
    """The HTML of the evaluations compared (``skip_pairs``: pairs whose verdict the report already gave)."""
    infos = {e.run_id: e for e in report.evaluations}
    rows = report.table[report.table["run_id"].isin(list(infos))]
    frame = charts.with_failures(chart_frame(rows), rows)
    parts = ["<h2 id=\"evaluations\">Evaluations</h2>"]
    left_out = [rid for rid in infos if rid not in set(frame["run_id"])]
    if left_out:
        parts.append(para("Without an accuracy (failed, stopped or still running), so not charted: "
                          + ", ".join(left_out) + ".", "note"))
    if frame.empty:
        return "".join(parts)
    names = labels(frame)
    frame = frame.assign(label=frame["run_id"].map(names))
    parts.append(table(frame.sort_values("accuracy", ascending=False), [
        Column("label", "run"), Column("kind", "kind"), Column("n", "n", num, True),
        Column("accuracy", "accuracy", pct, True), Column("ci_low", "95 % CI low", pct, True),
        Column("ci_high", "95 % CI high", pct, True), Column("macro_f1", "macro F1", lambda v: num(v, 3), True),
        Column("failed", "failed", num, True), Column("cost_per_1k", "cost per 1k predictions", usd, True),
        Column("spent_usd", "spend", usd, True),
        Column("run_id", "run id", nowrap=True)]))
    parts.append('<div class="cols"><div>' + figs.add(charts.accuracy_bars(frame)) + "</div><div>"
                 + figs.add(charts.accuracy_vs_cost(frame)) + "</div></div>")
    tables = {}
    for rid in frame["run_id"]:
        per_label = reader.artifact(infos[rid], "per_label.csv", "csv")
        if per_label is not None and not per_label.empty:
            tables[names[rid]] = per_label
    if tables:
        parts.append("<h3>F1 per label</h3>" + figs.add(charts.per_label_f1_heatmap(per_label_frame(tables))))
    confusions = [figs.add(charts.confusion_heatmap(cm, title=f"Confusion matrix · {names[rid]}"))
                  for rid in frame["run_id"] if (cm := reader.confusion(infos[rid])) is not None]
    if confusions:
        parts.append("<h3>Confusion matrices</h3><div class=\"cols\">"
                     + "".join(f"<div>{c}</div>" for c in confusions) + "</div>")
    parts.append(_pairs(reader, frame, infos, names, skip_pairs))
    return "".join(parts)


def _pairs(reader: data.Reader, frame: pd.DataFrame, infos: dict[str, data.RunInfo], names: dict[str, str],
           skip: set[frozenset[str]]) -> str:
    ordered = list(frame.sort_values("accuracy", ascending=False, kind="stable")["run_id"])
    pairs = [(b, a) for b, a in combinations(ordered, 2) if frozenset((a, b)) not in skip]
    if not pairs:
        return ""
    records = {rid: reader.records(infos[rid]) for rid in ordered}
    found, apart = [], []
    for better, other in pairs:  # B is the more accurate run: the sentence says how much better
        if records[better] is None or records[other] is None:
            apart.append(f"{names[other]} and {names[better]} (no per-example records)")
            continue
        try:
            found.append((verdict(records[other], records[better], names[other], names[better]),
                          (names[other], names[better])))
        except StudioError:
            apart.append(f"{names[other]} and {names[better]}")
    out = ["<h3>Pairs of runs on the same examples</h3>"]
    if not found:
        out.append(para("No two of these runs were scored on the same examples."))
    for v, _ in found[:MAX_PAIRS]:
        out.append(para(v.sentence, "verdict"))
    if found:
        out.append(verdict_table([v for v, _ in found[:MAX_PAIRS]], [n for _, n in found[:MAX_PAIRS]]))
    if len(found) > MAX_PAIRS:
        out.append(para(f"… and {len(found) - MAX_PAIRS} more pairs, left out here.", "muted small"))
    if apart:
        out.append(f'<p class="muted small">Not compared (not the same examples): {esc("; ".join(apart))}.</p>')
    return "".join(out)
