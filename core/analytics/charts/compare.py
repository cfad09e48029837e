"""Comparison charts: accuracy with intervals, accuracy vs cost with the Pareto front, per-label F1, confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics import stats
from core.analytics.charts import _programs as programs
from core.analytics.charts._base import (
    BOTTOM_LEGEND,
    DEGRADED_COLOR,
    FAILED_COLOR,
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


def accuracy_bars(runs: pd.DataFrame) -> go.Figure:
    """One bar per run label, accuracy in percent (failures count as wrong) with its confidence interval, best first.

    Colour is the model; the fill pattern is the program (original / optimized, Predict / CoT), one legend entry
    per kind. "45.0% / n=60" sits above the whisker top, never on it. Runs with failed examples get a hatched
    "failed" segment stacked on the bar, the count above it ("12 failed") and the count by kind on hover; a
    degraded run's bar has a red outline and says DEGRADED.
    """
    title = "Accuracy by run (bars: confidence interval)"
    if runs.empty:
        return _empty_figure(title)
    _require(runs, ["label", "model", "accuracy"], "accuracy_bars")
    df = with_failures(runs, runs)
    df["_low"], df["_high"] = _intervals(df)
    df["_label"] = _unique_labels(df["label"])
    df["_kind"] = programs.kinds(df)
    df["_legend"] = [k.legend for k in df["_kind"]]
    df = df.sort_values("accuracy", ascending=False, kind="stable")
    acc = df["accuracy"].to_numpy(dtype=float) * 100
    n = df["n"] if "n" in df else pd.Series(np.nan, index=df.index)
    nn = n.to_numpy(dtype=float)
    failed = df["failed"].to_numpy(dtype=float)
    degraded = df["degraded"].to_numpy(dtype=bool)
    share = np.where((nn > 0) & ~np.isnan(failed), np.nan_to_num(failed) / np.where(nn > 0, nn, 1), 0.0) * 100
    rows = df.to_dict("records")
    failures = [failure_text(row["failed"], row.get("n"), failure_counts(row)) for row in rows]
    macro = df["macro_f1"] if "macro_f1" in df else pd.Series(np.nan, index=df.index)
    cost = df["cost_per_1k"] if "cost_per_1k" in df else pd.Series(np.nan, index=df.index)
    answered = df["accuracy_answered"].to_numpy(dtype=float)
    df["_hover"] = [
        f"<b>{lab}</b>" + (" <b>DEGRADED</b>" if bad else "")
        + f"<br>{kind.legend}<br>accuracy {a:.1f}% ({lo * 100:.1f}–{hi * 100:.1f}%)<br>{_n_text(k)}"
        + (f"<br>{fail}" if fail else "")
        + ("" if np.isnan(ans) or not f else f"<br>accuracy of the answered {ans * 100:.1f}%")
        + ("" if pd.isna(f1) else f"<br>macro-F1 {f1:.3f}")
        + ("" if pd.isna(c) else f"<br>cost of the program {_usd(c)} per 1k predictions")
        for lab, kind, bad, a, lo, hi, k, fail, ans, f, f1, c in zip(
            df["_label"], df["_kind"], degraded, acc, df["_low"], df["_high"], n, failures, answered,
            np.nan_to_num(failed), macro, cost, strict=True)
    ]
    colors = model_colors(runs["model"])
    fig = go.Figure()
    for legend, group in df.groupby("_legend", sort=False):
        kind = group["_kind"].iloc[0]
        y = group["accuracy"].to_numpy(dtype=float) * 100
        bad = group["degraded"].to_numpy(dtype=bool)
        fig.add_trace(go.Bar(
            x=group["_label"].tolist(),
            y=y,
            name=str(legend),
            marker={"color": [colors[str(m)] for m in group["model"]],
                    "pattern": {"shape": programs.pattern(kind), "fillmode": "overlay", "fgcolor": "white",
                                "solidity": 0.35},
                    "line": {"color": [DEGRADED_COLOR if b else "rgba(0,0,0,0)" for b in bad],
                             "width": [3 if b else 0 for b in bad]}},
            error_y={"type": "data", "symmetric": False, "array": group["_high"].to_numpy() * 100 - y,
                     "arrayminus": y - group["_low"].to_numpy() * 100},
            hovertext=group["_hover"].tolist(),
            hoverinfo="text",
        ))
    any_failed = bool(np.nansum(failed) > 0) or bool(degraded.any())
    if any_failed:
        fig.add_trace(go.Bar(
            x=df["_label"].tolist(),
            y=share,
            marker={"color": "rgba(0,0,0,0)", "line": {"color": FAILED_COLOR, "width": 1},
                    "pattern": {"shape": programs.FAILED_PATTERN, "fgcolor": FAILED_COLOR, "solidity": 0.4}},
            hovertext=df["_hover"].tolist(),
            hoverinfo="text",
            name="failed",
        ))
    notes = [" · ".join(p for p in ((f"{int(f)} failed" if f > 0 else ""), "DEGRADED" if bad else "") if p)
             for f, bad in zip(np.nan_to_num(failed), degraded, strict=True)]
    text = [f"{a:.1f}%<br>{_n_text(k)}" + (f"<br>{note}" if note else "") for a, k, note in zip(acc, n, notes, strict=True)]
    # Labels go above whatever is highest on the bar (whisker or failed segment), so nothing sits on a whisker.
    top = np.fmax(df["_high"].to_numpy(dtype=float) * 100, acc + share)
    fig.add_trace(go.Scatter(
        x=df["_label"].tolist(), y=top, mode="text", text=text, textposition="top center", cliponaxis=False,
        hoverinfo="skip", showlegend=False, name="labels",
    ))
    lines = 3 if any(notes) else 2
    fig.update_layout(
        title=title,
        barmode="stack",
        xaxis={"categoryorder": "array", "categoryarray": df["_label"].tolist()},
        yaxis={"title": "Accuracy (%)", "range": [0, 100 + 8 * lines], "ticksuffix": "%",
               "tickvals": list(range(0, 101, 20))},
        legend={**BOTTOM_LEGEND, "title": {"text": "Pattern: program", "side": "top"}},
        height=legend_height(480, sum(1 for t in fig.data if t.showlegend is not False), per_row=3),
    )
    return fig


def accuracy_vs_cost(runs: pd.DataFrame) -> go.Figure:
    """Accuracy (%) against the cost of the program per 1,000 predictions (log axis: tokens x price, answers from
    the cache at list price, so a cached re-run sits where its first run does); the Pareto front joined by a step
    line. The hover also says what the run spent (``spent_usd``, when the frame has it).

    Colour is the model; the marker is the program (hollow: original, filled: optimized; circle: Predict,
    diamond: CoT), one legend entry per run label. The cost axis has ticks at powers of ten only ($0.01, $0.1,
    $1 …); free runs (cost 0, e.g. local models) sit on a tick that reads "free". Runs without a cost or an
    accuracy are left out. A single run still gets a sensible range on both axes.
    """
    title = "Accuracy vs cost per 1,000 predictions (upper left is better)"
    if runs.empty:
        return _empty_figure(title)
    _require(runs, ["label", "model", "accuracy", "cost_per_1k"], "accuracy_vs_cost")
    df = with_failures(runs, runs)
    df["_label"] = _unique_labels(df["label"])
    df["_low"], df["_high"] = _intervals(df)
    df = df[df["accuracy"].notna() & df["cost_per_1k"].notna()].copy()
    if df.empty:
        return _empty_figure(title, "No runs with both accuracy and cost yet")
    cost = df["cost_per_1k"].to_numpy(dtype=float)
    floor = free_floor(cost)
    df["_x"] = np.where(cost > 0, cost, floor)
    df["_y"] = df["accuracy"].to_numpy(dtype=float) * 100
    df["_pareto"] = stats.pareto_front(df, "cost_per_1k", "accuracy").to_numpy()
    df["_kind"] = programs.kinds(df)
    others = programs.other_modules(list(df["_kind"]))
    colors = model_colors(runs["model"])

    def hover(row: dict) -> str:
        cost_text = ("free / local" if row["cost_per_1k"] == 0 else
                     f"cost of the program {_usd(row['cost_per_1k'])} per 1k predictions")
        spent = row.get("spent_usd")
        if spent is not None and not pd.isna(spent):
            cost_text += f"<br>this run spent {_usd(spent)}"
        fail = failure_text(row["failed"], row.get("n"), failure_counts(row))
        return (
            f"<b>{row['_label']}</b>" + (" <b>DEGRADED</b>" if row["degraded"] else "")
            + f"<br>{row['_kind'].legend}<br>accuracy {row['_y']:.1f}% "
            f"({row['_low'] * 100:.1f}–{row['_high'] * 100:.1f}%)<br>{cost_text}"
            + (f"<br>{_n_text(row['n'])}" if "n" in row else "")
            + (f"<br>{fail}" if fail else "")
            + ("<br>on the Pareto front" if row["_pareto"] else "")
        )

    df["_hover"] = [hover(row) for row in df.to_dict("records")]
    fig = go.Figure()
    # One trace per label (model · module · program): the legend says what each colour-and-marker is.
    for label, group in df.groupby("label", sort=True):
        model = str(group["model"].iloc[0])
        bad = group["degraded"].to_numpy(dtype=bool)
        fig.add_trace(
            go.Scatter(
                x=group["_x"].to_numpy(),
                y=group["_y"].to_numpy(),
                mode="markers",
                name=str(label),
                # A degraded run's point is crossed and wears a red ring (its accuracy counts failures as wrong).
                marker={"color": colors[model], "size": 12,
                        "symbol": _one_or_all([programs.symbol(k, others, bool(b))
                                               for k, b in zip(group["_kind"], bad, strict=True)]),
                        "line": {"width": _one_or_all([4 if b else 2 for b in bad]),
                                 "color": _one_or_all([DEGRADED_COLOR if b else colors[model] for b in bad])}},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": group["_high"].to_numpy() * 100 - group["_y"].to_numpy(),
                    "arrayminus": group["_y"].to_numpy() - group["_low"].to_numpy() * 100,
                },
                text=group["_label"].tolist(),
                hovertext=group["_hover"].tolist(),
                hoverinfo="text",
                cliponaxis=False,
            )
        )
    front = df[df["_pareto"]].sort_values(["_x", "_y"])
    fig.add_trace(
        go.Scatter(
            x=front["_x"].to_numpy(),
            y=front["_y"].to_numpy(),
            mode="lines+markers",
            name="Pareto front",
            line={"shape": "hv", "color": PARETO_COLOR, "dash": "dot"},
            marker={"symbol": "circle-open", "size": 20, "color": PARETO_COLOR, "line": {"width": 2}},
            text=front["_label"].tolist(),
            hovertext=front["_hover"].tolist(),
            hoverinfo="text",
        )
    )
    has_free = bool((cost <= 0).any())
    fig.update_layout(
        title=title,
        xaxis={"title": "Cost of the program per 1,000 predictions (USD, log scale)",
               **log_usd_axis(df["_x"], free_at=floor if has_free else None)},
        yaxis={"title": "Accuracy (%)", "ticksuffix": "%",
               "range": percent_range(df["_low"] * 100, df["_high"] * 100)},
        legend={**BOTTOM_LEGEND, "title": {"text": "Colour: model · hollow: original · filled: optimized", "side": "top"}},
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
        fig.add_trace(
            go.Bar(
                x=group["label"].astype(str).tolist(),
                y=group["f1"].to_numpy(dtype=float),
                name=str(run_label),
                marker_color=colors[str(run_label)],
                hovertext=hover,
                hoverinfo="text",
            )
        )
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
            hovertemplate="gold %{y}<br>predicted %{x}<br>count %{z:.0f} (%{customdata:.1f}% of gold %{y})<extra></extra>",
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

