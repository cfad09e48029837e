"""The evaluations' part of the report: a table, accuracy bars, accuracy against cost, the per-label F1 heatmap,
confusion matrices and the verdict of each pair of runs scored on the same examples.

Runs of a task scored in [0, 1] (tag ``studio.metric``: "token F1", a judge...) are shown apart, by metric: their mean
score with its interval, the accuracy (all answers right) beside it and each output field's score; the same charts
named by the metric; no per-label F1 and no confusion matrix (they belong to classification)."""

from __future__ import annotations

import logging
from itertools import combinations
from typing import Any

import pandas as pd

from core.analytics import charts
from core.analytics.verdict import verdict
from core.config.errors import StudioError
from core.report import data, scored
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
    """The HTML of the evaluations compared (``skip_pairs``: pairs whose verdict the report already gave), one part
    per metric the runs are scored by (classification's accuracy first)."""
    groups: dict[str, dict[str, data.RunInfo]] = {}
    for e in report.evaluations:
        groups.setdefault(scored.metric_of(e.tags), {})[e.run_id] = e
    metrics = sorted(groups, key=lambda m: m != scored.ACCURACY)  # stable: the others in the report's order
    parts = ["<h2 id=\"evaluations\">Evaluations</h2>"]
    for metric in metrics:
        infos = groups[metric]
        rows = report.table[report.table["run_id"].isin(list(infos))]
        if len(metrics) > 1:
            parts.append(f"<h3>Scored by {esc(metric)}</h3>")
        parts.append(_accuracy(reader, infos, rows, figs, skip_pairs) if metric == scored.ACCURACY
                     else _scores(reader, infos, rows, figs, skip_pairs, metric))
    return "".join(parts)


def _charted(rows: pd.DataFrame, infos: dict[str, data.RunInfo], what: str) -> tuple[pd.DataFrame, list[str]]:
    """The runs that can be charted, and a note naming those without ``what`` (failed, stopped or running)."""
    frame = charts.with_failures(chart_frame(rows), rows)
    left_out = [rid for rid in infos if rid not in set(frame["run_id"])]
    note = para(f"Without {what} (failed, stopped or still running), so not charted: " + ", ".join(left_out) + ".",
                "note")
    return frame, [note] if left_out else []


def _accuracy(reader: data.Reader, infos: dict[str, data.RunInfo], rows: pd.DataFrame, figs: Figures,
              skip_pairs: set[frozenset[str]]) -> str:
    """Classification's evaluations: accuracy, macro F1, per-label F1 and confusion matrices."""
    frame, parts = _charted(rows, infos, "an accuracy")
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


def _scores(reader: data.Reader, infos: dict[str, data.RunInfo], rows: pd.DataFrame, figs: Figures,
            skip_pairs: set[frozenset[str]], metric: str) -> str:
    """Evaluations of a task scored by ``metric``: mean score with its interval, all answers right, the score of each
    output field; the bars and the cost chart drawn on the score."""
    (frame, parts), shown = _charted(rows, infos, "a score"), scored.metric_name(metric)
    if frame.empty:
        return "".join(parts)
    names = labels(frame)
    order = scored.output_order(reader.records(infos[str(frame["run_id"].iloc[0])]))
    # ``metric``: what these runs' tags say (the run table's own column may not know it for older tables)
    frame, fields = _as_scores(frame.assign(label=frame["run_id"].map(names), metric=metric), infos, order)
    parts.append(table(frame.sort_values("accuracy", ascending=False), [
        Column("label", "run"), Column("kind", "kind"), Column("n", "n", num, True),
        Column("accuracy", f"score ({shown})", _three, True), Column("ci_low", "95 % CI low", _three, True),
        Column("ci_high", "95 % CI high", _three, True), Column("all_right", "all answers right", pct, True),
        *(Column(f"field:{f}", f"score: {f}", _three, True) for f in fields),
        Column("failed", "failed", num, True), Column("cost_per_1k", "cost per 1k predictions", usd, True),
        Column("spent_usd", "spend", usd, True), Column("run_id", "run id", nowrap=True)]))
    parts.append('<div class="cols"><div>' + figs.add(charts.accuracy_bars(frame, metric)) + "</div><div>"
                 + figs.add(charts.accuracy_vs_cost(frame, metric)) + "</div></div>")
    parts.append(_pairs(reader, frame, infos, names, skip_pairs, shown))
    return "".join(parts)


def _three(value: Any) -> str:
    return num(value, 3)  # a score reads 0.672


def _as_scores(frame: pd.DataFrame, infos: dict[str, data.RunInfo],
               order: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The chart frame with the mean score and its interval where the accuracy was (the accuracy kept as
    ``all_right``; no macro F1, a label's statistic), and a ``field:<name>`` column per output field; read from the
    runs' own metrics."""
    out = frame.assign(all_right=frame["accuracy"], macro_f1=float("nan"), accuracy_answered=float("nan"))
    fields: list[str] = []
    for i, rid in zip(out.index, out["run_id"], strict=True):
        m = infos[rid].metrics
        out.loc[i, "accuracy"] = scored.score_of(m)
        out.loc[i, "accuracy_answered"] = m.get("score_answered", float("nan"))  # the hover's "of the answered"
        if "score_ci_low" in m and "score_ci_high" in m:
            out.loc[i, "ci_low"], out.loc[i, "ci_high"] = m["score_ci_low"], m["score_ci_high"]
        for field, value in scored.field_scores(m, order).items():
            fields += [] if field in fields else [field]
            out.loc[i, f"field:{field}"] = value
    return out, fields


def _pairs(reader: data.Reader, frame: pd.DataFrame, infos: dict[str, data.RunInfo], names: dict[str, str],
           skip: set[frozenset[str]], metric: str = scored.ACCURACY) -> str:
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
            found.append((verdict(records[other], records[better], names[other], names[better], metric=metric),
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
