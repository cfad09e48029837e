"""Comparison charts: accuracy (or a task's score, named by its metric) with intervals, the same against cost with the
Pareto front, per-label F1, confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics import stats
from core.analytics.charts import _programs as programs
from core.analytics.charts import scores
from core.analytics.charts._base import (
    BOTTOM_LEGEND,
    DEGRADED_COLOR,
    PARETO_COLOR,
    _empty_figure,
    _intervals,
    _n_text,
    _require,
    _series_colors,
    _unique_labels,
    _usd,
    failure_counts,
    failure_text,
    free_floor,
    legend_height,
    log_usd_axis,
    model_colors,
    percent_range,
    with_failures,
)
from core.analytics.failures import failed_runs
from core.config.errors import ConfigError

ROW_PX = 40  # height of one run's bar row (its name may take two lines)
NAME_CHARS = 28  # a run name wraps at " · " past this many characters
FAILED_MARK = "\u26a0"  # the sign before a failure count beside a bar or a point


def wrap_name(label: str, width: int = NAME_CHARS) -> str:
    """A run name on lines of about ``width`` characters, broken at " · " (an axis label that never spills)."""
    lines: list[str] = []
    for part in str(label).split(" · "):
        if lines and len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "<br>".join(lines)


def _failure_note(failed: float, degraded: bool) -> str:
    """"⚠ 50 failed · DEGRADED", "1 failed", or "" for a run without failures."""
    count = f"{int(failed)} failed" if failed > 0 else ""
    if degraded:
        return f"{FAILED_MARK} " + " · ".join(p for p in (count, "DEGRADED") if p)
    return count


def _bar_hover(row: dict) -> str:
    fail = failure_text(row["failed"], row.get("n"), failure_counts(row))
    answered, f1, cost = row.get("accuracy_answered"), row.get("macro_f1"), row.get("cost_per_1k")
    return (f"<b>{row['_label']}</b>" + (" <b>DEGRADED</b>" if row["_bad"] else "")
            + f"<br>{row['_kind'].legend}<br>{row['_word']} {row['_acc']:.1f}% ({row['_low'] * 100:.1f}–"
            f"{row['_high'] * 100:.1f}%)<br>{_n_text(row.get('n', np.nan))}" + (f"<br>{fail}" if fail else "")
            + ("" if answered is None or pd.isna(answered) or not row["_failed"]
               else f"<br>{row['_word']} of the answered {answered * 100:.1f}%")
            + ("" if f1 is None or pd.isna(f1) else f"<br>macro-F1 {f1:.3f}")
            + ("" if cost is None or pd.isna(cost) else f"<br>cost of the program {_usd(cost)} per 1k predictions"))


def _measured(runs: pd.DataFrame, metric: str | None, chart: str) -> tuple[pd.DataFrame, str]:
    """(the runs with their accuracy columns holding what the metric measures, ``charts.scores.as_scores``, and
    ``_word`` naming it on hover; the metric): ``metric``, else the runs' own (their ``metric`` column, else
    accuracy). ConfigError when the runs mix metrics or were scored by another than ``metric``."""
    own = scores.one_metric(runs["metric"]) if "metric" in runs else None
    if metric is not None and own is not None and own != scores.one_metric([metric]):
        raise ConfigError(f"{chart}: the runs were scored by {own}, not {metric}.",
                          "Pass the runs' own metric: one chart shows one metric.")
    metric = metric if metric is not None else own or scores.ACCURACY
    return scores.as_scores(runs, metric).assign(_word=scores.metric_name(metric)), metric


def _bar_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs, best first, with what a bar row draws: interval, program kind, failures, note, hover."""
    df = with_failures(runs, runs)
    df["_low"], df["_high"] = _intervals(df)
    df["_label"] = _unique_labels(df["label"])
    df["_kind"] = programs.kinds(df)
    df["_legend"] = [k.legend for k in df["_kind"]]
    df = df.sort_values("accuracy", ascending=False, kind="stable")
    df["_acc"] = df["accuracy"].to_numpy(dtype=float) * 100
    df["_failed"] = np.nan_to_num(df["failed"].to_numpy(dtype=float))
    df["_bad"] = failed_runs(df).to_numpy(dtype=bool) | df["degraded"].to_numpy(dtype=bool)
    df["_note"] = [_failure_note(f, b) for f, b in zip(df["_failed"], df["_bad"], strict=True)]
    df["_hover"] = [_bar_hover(row) for row in df.to_dict("records")]
    return df


def _bar_traces(df: pd.DataFrame, colors: dict[str, str]) -> list[go.Bar]:
    """One horizontal bar trace per program kind (its legend entry), each bar at the run's accuracy."""
    traces = []
    for legend, group in df.groupby("_legend", sort=False):
        kind, x, bad = group["_kind"].iloc[0], group["_acc"].to_numpy(), group["_bad"].to_numpy(dtype=bool)
        traces.append(go.Bar(
            y=group["_label"].tolist(), x=x, orientation="h", name=str(legend),
            marker={"color": [colors[str(m)] for m in group["model"]],
                    "pattern": {"shape": programs.pattern(kind), "fillmode": "overlay", "fgcolor": "white",
                                "solidity": 0.35},
                    "line": {"color": [DEGRADED_COLOR if b else "rgba(0,0,0,0)" for b in bad],
                             "width": [3 if b else 0 for b in bad]}},
            error_x={"type": "data", "symmetric": False, "array": group["_high"].to_numpy() * 100 - x,
                     "arrayminus": x - group["_low"].to_numpy() * 100},
            hovertext=group["_hover"].tolist(), hoverinfo="text",
        ))
    return traces


def _failure_markers(df: pd.DataFrame) -> go.Scatter | None:
    """A cross at each failed or degraded run's accuracy (never a bar of its failures): None when there is none."""
    bad = df[df["_bad"]]
    if bad.empty:
        return None
    return go.Scatter(
        x=bad["_acc"].to_numpy(), y=bad["_label"].tolist(), mode="markers", name="failed",
        marker={"symbol": "x", "size": 13, "color": DEGRADED_COLOR, "line": {"width": 1, "color": "white"}},
        hovertext=bad["_hover"].tolist(), hoverinfo="text", cliponaxis=False,
    )


def accuracy_bars(runs: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """One horizontal bar per run label, accuracy in percent (failures count as wrong) with its confidence
    interval, best at the top; run names read across, wrapped, never slanted. For a task scored otherwise
    (``metric``: the runs' ``studio.metric`` tag, e.g. "token F1"; default: their ``metric`` column, else accuracy),
    the mean score and its interval, title and axis naming the metric ("Score (token F1)"); mixed metrics raise.

    Colour is the model; the fill pattern is the program (original / optimized, Predict / CoT), one legend entry
    per kind. "45.0% · n=60" sits right of the whisker, on the bar's own row, so labels never overlap. A failed or
    degraded run (``failures.failed_runs``) is drawn at its accuracy with a red cross and a red outline, its
    failure count beside it ("⚠ 50 failed · DEGRADED"); failures by kind, in words, on hover.
    """
    if runs.empty:
        return _empty_figure(f"{scores.measure_title(metric)} by run (whiskers: confidence interval)")
    _require(runs, ["label", "model", "accuracy"], "accuracy_bars")
    measured, metric = _measured(runs, metric, "accuracy_bars")
    measure = scores.measure_title(metric)
    title = f"{measure} by run (whiskers: confidence interval)"
    df = _bar_frame(measured)
    fig = go.Figure(_bar_traces(df, model_colors(runs["model"])))
    if (markers := _failure_markers(df)) is not None:
        fig.add_trace(markers)
    n = df["n"] if "n" in df else pd.Series(np.nan, index=df.index)
    text = [f"{a:.1f}% · {_n_text(k)}" + (f"<br>{note}" if note else "")
            for a, k, note in zip(df["_acc"], n, df["_note"], strict=True)]
    fig.add_trace(go.Scatter(
        x=np.fmax(df["_high"].to_numpy(dtype=float) * 100, df["_acc"].to_numpy()), y=df["_label"].tolist(),
        mode="text", text=text, textposition="middle right", textfont={"size": 11}, cliponaxis=False,
        hoverinfo="skip", showlegend=False, name="labels",
    ))
    labels = df["_label"].tolist()
    fig.update_layout(
        title=title, barmode="overlay", bargap=0.35,
        yaxis={"categoryorder": "array", "categoryarray": labels, "autorange": "reversed", "tickmode": "array",
               "tickvals": labels, "ticktext": [wrap_name(lab) for lab in labels], "automargin": True},
        xaxis={"title": f"{measure} (%)", "range": [0, 100 + (40 if any(df["_note"]) else 30)], "ticksuffix": "%",
               "tickvals": list(range(0, 101, 20))},
        legend={**BOTTOM_LEGEND, "title": {"text": "Pattern: program", "side": "top"}},
        # Title, axis and margins take ~150 px: two runs in 220 px left 35 px a row, and a failed run's two-line
        # label ran into the bar above it.
        height=legend_height(150 + ROW_PX * len(df), sum(1 for t in fig.data if t.showlegend is not False),
                             per_row=3),
    )
    return fig


def _cost_hover(row: dict) -> str:
    cost_text = ("free / local" if row["cost_per_1k"] == 0 else
                 f"cost of the program {_usd(row['cost_per_1k'])} per 1k predictions")
    spent = row.get("spent_usd")
    if spent is not None and not pd.isna(spent):
        cost_text += f"<br>this run spent {_usd(spent)}"
    fail = failure_text(row["failed"], row.get("n"), failure_counts(row))
    return (f"<b>{row['_label']}</b>" + (" <b>DEGRADED</b>" if row["degraded"] else "")
            + f"<br>{row['_kind'].legend}<br>{row['_word']} {row['_y']:.1f}% "
            f"({row['_low'] * 100:.1f}–{row['_high'] * 100:.1f}%)<br>{cost_text}"
            + (f"<br>{_n_text(row['n'])}" if "n" in row else "") + (f"<br>{fail}" if fail else "")
            + ("<br>on the Pareto front" if row["_pareto"] else "")
            + ("<br>failed: left off the Pareto front" if row["_bad"] else ""))


def _cost_frame(runs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """The runs with both accuracy and cost, where each point goes (free runs on the floor tick), the Pareto front
    of the usable runs (a failed run is no trade-off to pick), and the floor."""
    df = with_failures(runs, runs)
    df["_label"] = _unique_labels(df["label"])
    df["_low"], df["_high"] = _intervals(df)
    df = df[df["accuracy"].notna() & df["cost_per_1k"].notna()].copy()
    cost = df["cost_per_1k"].to_numpy(dtype=float)
    floor = free_floor(cost)
    df["_x"] = np.where(cost > 0, cost, floor)
    df["_y"] = df["accuracy"].to_numpy(dtype=float) * 100
    df["_bad"] = failed_runs(df).to_numpy(dtype=bool) | df["degraded"].to_numpy(dtype=bool)
    df["_pareto"] = False
    if (~df["_bad"]).any():
        df.loc[~df["_bad"], "_pareto"] = stats.pareto_front(df[~df["_bad"]], "cost_per_1k", "accuracy")
    df["_pareto"] = df["_pareto"].astype(bool)
    df["_kind"] = programs.kinds(df)
    df["_note"] = [_failure_note(f, b) if b else "" for f, b in
                   zip(np.nan_to_num(df["failed"].to_numpy(dtype=float)), df["_bad"], strict=True)]
    df["_hover"] = [_cost_hover(row) for row in df.to_dict("records")]
    return df, floor


def _cost_trace(label: str, group: pd.DataFrame, color: str, others: list[str]) -> go.Scatter:
    """One label's points: colour the model, marker the program; a failed run crossed, ringed red, its count beside."""
    bad = group["_bad"].to_numpy(dtype=bool)
    notes = group["_note"].tolist()
    return go.Scatter(
        x=group["_x"].to_numpy(), y=group["_y"].to_numpy(), mode="markers+text" if any(notes) else "markers",
        name=str(label), text=notes, textposition="middle right", textfont={"size": 11, "color": DEGRADED_COLOR},
        marker={"color": color, "size": 12,
                "symbol": _one_or_all([programs.symbol(k, others, bool(b)) for k, b in zip(group["_kind"], bad,
                                                                                            strict=True)]),
                "line": {"width": _one_or_all([4 if b else 2 for b in bad]),
                         "color": _one_or_all([DEGRADED_COLOR if b else color for b in bad])}},
        error_y={"type": "data", "symmetric": False, "array": group["_high"].to_numpy() * 100 - group["_y"].to_numpy(),
                 "arrayminus": group["_y"].to_numpy() - group["_low"].to_numpy() * 100},
        hovertext=group["_hover"].tolist(), hoverinfo="text", cliponaxis=False,
    )


def _front_trace(df: pd.DataFrame) -> go.Scatter:
    front = df[df["_pareto"]].sort_values(["_x", "_y"])
    return go.Scatter(
        x=front["_x"].to_numpy(), y=front["_y"].to_numpy(), mode="lines+markers", name="Pareto front",
        line={"shape": "hv", "color": PARETO_COLOR, "dash": "dot"},
        marker={"symbol": "circle-open", "size": 20, "color": PARETO_COLOR, "line": {"width": 2}},
        text=front["_label"].tolist(), hovertext=front["_hover"].tolist(), hoverinfo="text",
    )


def accuracy_vs_cost(runs: pd.DataFrame, metric: str | None = None) -> go.Figure:
    """Accuracy (%) against the cost of the program per 1,000 predictions (log axis: tokens x price, answers from
    the cache at list price, so a cached re-run sits where its first run does); the Pareto front of the usable runs
    joined by a step line. The hover also says what the run spent (``spent_usd``, when the frame has it). A task
    scored otherwise (``metric``, as ``accuracy_bars``) plots its mean score, named by the metric.

    Colour is the model; the marker is the program (hollow: original, filled: optimized; circle: Predict,
    diamond: CoT), one legend entry per run label. A failed or degraded run is crossed and ringed red at its
    accuracy, its failure count beside it, and left off the front. The cost axis has ticks at powers of ten only
    ($0.01, $0.1, $1 …); free runs (cost 0, e.g. local models) sit on a tick that reads "free". Runs without a
    cost or an accuracy are left out. A single run still gets a sensible range on both axes.
    """
    # Two lines: in half of a 1280 px page one line is cut ("… (upper left is bette").
    if runs.empty:
        return _empty_figure(f"{scores.measure_title(metric)} vs cost per 1,000 predictions<br><sup>upper left is "
                             "better</sup>")
    _require(runs, ["label", "model", "accuracy", "cost_per_1k"], "accuracy_vs_cost")
    measured, metric = _measured(runs, metric, "accuracy_vs_cost")
    measure = scores.measure_title(metric)
    title = f"{measure} vs cost per 1,000 predictions<br><sup>upper left is better</sup>"
    df, floor = _cost_frame(measured)
    if df.empty:
        return _empty_figure(title, f"No runs with both {scores.metric_name(metric)} and cost yet")
    colors, others = model_colors(runs["model"]), programs.other_modules(list(df["_kind"]))
    fig = go.Figure([_cost_trace(str(label), group, colors[str(group["model"].iloc[0])], others)
                     for label, group in df.groupby("label", sort=True)])
    fig.add_trace(_front_trace(df))
    has_free = bool((df["cost_per_1k"] <= 0).any())
    fig.update_layout(
        title=title,
        xaxis={"title": "Cost of the program per 1,000 predictions (USD, log scale)",
               **log_usd_axis(df["_x"], free_at=floor if has_free else None)},
        yaxis={"title": f"{measure} (%)", "ticksuffix": "%",
               "range": percent_range(df["_low"] * 100, df["_high"] * 100)},
        legend={**BOTTOM_LEGEND, "title": {"text": "Colour: model · hollow: original · filled: optimized",
                                           "side": "top"}},
        height=legend_height(460, len(fig.data), per_row=1),
    )
    return fig


def _one_or_all(values: list) -> object:
    # One value for a whole trace when they all agree: plotly checks every element of a list, slowly.
    return values[0] if len(set(values)) == 1 else values


def per_label_bars(per_label: pd.DataFrame) -> go.Figure:
    """F1 per class, one group of bars per class and one bar per run."""
    title = "F1 per class"
    if per_label.empty:
        return _empty_figure(title)
    _require(per_label, ["label", "run_label", "f1"], "per_label_bars")
    colors = _series_colors(per_label["run_label"])
    fig = go.Figure()
    for run_label, group in per_label.groupby("run_label", sort=False):
        hover = []
        for _, row in group.iterrows():
            parts = [f"<b>{run_label}</b>", f"class {row['label']}", f"F1 {row['f1']:.3f}"]
            for col in ("precision", "recall"):
                if col in row and pd.notna(row[col]):
                    parts.append(f"{col} {row[col]:.3f}")
            if "support" in row and pd.notna(row["support"]):
                parts.append(f"support {int(row['support'])}")
            hover.append("<br>".join(parts))
        fig.add_trace(go.Bar(x=group["label"].astype(str).tolist(), y=group["f1"].to_numpy(dtype=float),
                             name=str(run_label), marker_color=colors[str(run_label)], hovertext=hover,
                             hoverinfo="text"))
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title="Class",
        yaxis={"title": "F1 (0–1)", "range": [0, 1]},
        legend_title="Run",
    )
    return fig


def per_label_f1_heatmap(per_label: pd.DataFrame) -> go.Figure:
    """F1 per class across runs: one row per run, one column per class, the F1 written in every cell.

    ``per_label`` is ``core.tracking.runs.per_label_frame``'s table (columns ``run_label`` (or ``run``),
    ``label``, ``f1``; ``precision``, ``recall``, ``support`` go on hover). Runs and classes keep their first-seen
    order; a class a run never saw stays blank.
    """
    title = "F1 per class and run"
    run_col = "run_label" if "run_label" in per_label else "run"
    if per_label.empty:
        return _empty_figure(title)
    _require(per_label, [run_col, "label", "f1"], "per_label_f1_heatmap")
    df = per_label.assign(_run=per_label[run_col].astype(str), _label=per_label["label"].astype(str))
    runs, labels = list(dict.fromkeys(df["_run"])), list(dict.fromkeys(df["_label"]))
    cells = df.drop_duplicates(["_run", "_label"], keep="last").set_index(["_run", "_label"])
    z = np.full((len(runs), len(labels)), np.nan)
    hover = [["" for _ in labels] for _ in runs]
    for i, run in enumerate(runs):
        for j, label in enumerate(labels):
            if (run, label) not in cells.index:
                continue
            row = cells.loc[(run, label)]
            z[i, j] = float(row["f1"])
            parts = [f"<b>{run}</b>", f"class {label}", f"F1 {z[i, j]:.2f}"]
            parts += [f"{col} {float(row[col]):.2f}" for col in ("precision", "recall")
                      if col in row and pd.notna(row[col])]
            if "support" in row and pd.notna(row["support"]):
                parts.append(f"support {int(row['support'])}")
            hover[i][j] = "<br>".join(parts)
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in line] for line in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=runs, text=text, texttemplate="%{text}", textfont={"size": 14}, hovertext=hover,
        hoverinfo="text", zmin=0, zmax=1, colorscale="RdYlGn", colorbar={"title": "F1", "len": 0.8}, xgap=2, ygap=2,
    ))
    fig.update_layout(
        title=title,
        xaxis={"title": "Class", "side": "top", "type": "category", "automargin": True},
        yaxis={"title": None, "autorange": "reversed", "type": "category", "automargin": True},
        height=max(260, 140 + 44 * len(runs)),
    )
    return fig


def confusion_heatmap(cm: pd.DataFrame, title: str = "") -> go.Figure:
    """Heatmap of a confusion matrix (gold rows, predicted columns) with the count in every cell.

    ``cm`` is ``stats.confusion_matrix``'s table or a run's confusion.csv as ``store.read_csv`` returns it (the gold
    labels in a ``gold`` column).
    """
    title = title or "Confusion matrix"
    if "gold" in cm.columns and isinstance(cm.index, pd.RangeIndex):
        cm = cm.set_index("gold")
    if cm.empty:
        return _empty_figure(title)
    counts = cm.to_numpy(dtype=float)
    row_totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, row_totals, out=np.zeros_like(counts), where=row_totals > 0) * 100
    x = [str(c) for c in cm.columns]
    y = [str(i) for i in cm.index]
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=x,
            y=y,
            text=cm.to_numpy().astype(int).astype(str),
            texttemplate="%{text}",
            customdata=share,
            hovertemplate="gold %{y}<br>predicted %{x}<br>count %{z:.0f} (%{customdata:.1f}% of gold "
                          "%{y})<extra></extra>",
            colorscale="Blues",
            colorbar={"title": "Count"},
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": "Predicted label", "side": "bottom", "type": "category"},
        yaxis={"title": "Gold label", "autorange": "reversed", "type": "category"},
    )
    return fig

