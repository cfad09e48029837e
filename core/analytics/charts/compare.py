"""Comparison charts: accuracy with intervals, accuracy vs cost with the Pareto front, per-label F1, confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics import stats
from core.analytics.charts._base import (
    DEGRADED_COLOR,
    FAILED_COLOR,
    FREE_FLOOR_FACTOR,
    FREE_FLOOR_FALLBACK,
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
    model_colors,
    with_failures,
)


def accuracy_bars(runs: pd.DataFrame) -> go.Figure:
    """One bar per run label, accuracy in percent (failures count as wrong) with its confidence interval, best first.

    Runs with failed examples get a hatched "failed" segment stacked on the bar, with the count above it
    ("12 failed") and the count by kind on hover; a degraded run's bar has a red outline and says DEGRADED.
    """
    title = "Accuracy by run (bars: confidence interval)"
    if runs.empty:
        return _empty_figure(title)
    _require(runs, ["label", "model", "accuracy"], "accuracy_bars")
    df = with_failures(runs, runs)
    df["_low"], df["_high"] = _intervals(df)
    df = df.sort_values("accuracy", ascending=False, kind="stable")
    acc = df["accuracy"].to_numpy(dtype=float) * 100
    low = df["_low"].to_numpy(dtype=float) * 100
    high = df["_high"].to_numpy(dtype=float) * 100
    n = df["n"] if "n" in df else pd.Series(np.nan, index=df.index)
    colors = model_colors(runs["model"])
    labels = _unique_labels(df["label"])
    failed = df["failed"].to_numpy(dtype=float)
    degraded = df["degraded"].to_numpy(dtype=bool)
    rows = df.to_dict("records")
    failures = [failure_text(row["failed"], row.get("n"), failure_counts(row)) for row in rows]
    text = [f"{a:.1f}% ({_n_text(k)})" for a, k in zip(acc, n, strict=True)]
    macro = df["macro_f1"] if "macro_f1" in df else pd.Series(np.nan, index=df.index)
    cost = df["cost_per_1k"] if "cost_per_1k" in df else pd.Series(np.nan, index=df.index)
    answered = df["accuracy_answered"].to_numpy(dtype=float)
    hover = [
        f"<b>{lab}</b>" + (" <b>DEGRADED</b>" if bad else "")
        + f"<br>accuracy {a:.1f}% ({lo:.1f}–{hi:.1f}%)<br>{_n_text(k)}"
        + (f"<br>{fail}" if fail else "")
        + ("" if np.isnan(ans) or not f else f"<br>accuracy of the answered {ans * 100:.1f}%")
        + ("" if pd.isna(f1) else f"<br>macro-F1 {f1:.3f}")
        + ("" if pd.isna(c) else f"<br>{_usd(c)} per 1k predictions")
        for lab, bad, a, lo, hi, k, fail, ans, f, f1, c in zip(
            labels, degraded, acc, low, high, n, failures, answered, np.nan_to_num(failed), macro, cost, strict=True)
    ]
    any_failed = bool(np.nansum(failed) > 0) or bool(degraded.any())
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=acc,
            marker={"color": [colors[str(m)] for m in df["model"]],
                    "line": {"color": [DEGRADED_COLOR if bad else "rgba(0,0,0,0)" for bad in degraded],
                             "width": [3 if bad else 0 for bad in degraded]}},
            error_y={"type": "data", "symmetric": False, "array": high - acc, "arrayminus": acc - low},
            text=text,
            # Stacked bars only take outside text on the top segment: the failed one, when there is one.
            textposition="auto" if any_failed else "outside",
            cliponaxis=False,
            hovertext=hover,
            hoverinfo="text",
            name="accuracy",
            showlegend=False,  # colors are models here; only the hatched "failed" segment needs a legend entry
        )
    )
    if any_failed:
        nn = n.to_numpy(dtype=float)
        share = np.where((nn > 0) & ~np.isnan(failed), np.nan_to_num(failed) / np.where(nn > 0, nn, 1), 0.0) * 100
        fig.add_trace(
            go.Bar(
                x=labels,
                y=share,
                marker={"color": "rgba(0,0,0,0)", "line": {"color": FAILED_COLOR, "width": 1},
                        "pattern": {"shape": "/", "fgcolor": FAILED_COLOR, "solidity": 0.4}},
                text=[
                    " · ".join(p for p in ((f"{int(f)} failed" if f > 0 else ""), "DEGRADED" if bad else "") if p)
                    for f, bad in zip(np.nan_to_num(failed), degraded, strict=True)
                ],
                textposition="outside",
                cliponaxis=False,
                hovertext=hover,
                hoverinfo="text",
                name="failed",
            )
        )
        fig.update_layout(barmode="stack")
    fig.update_layout(
        title=title,
        xaxis_title="Run",
        yaxis={"title": "Accuracy (%)", "range": [0, 100], "ticksuffix": "%"},
        showlegend=any_failed,
    )
    return fig


def accuracy_vs_cost(runs: pd.DataFrame) -> go.Figure:
    """Accuracy (%) against cost per 1,000 predictions (log axis); the Pareto front joined by a step line.

    Free runs (cost 0, e.g. local models) sit at a floor below the cheapest paid run and say so on hover.
    Runs without a cost or an accuracy are left out.
    """
    title = "Accuracy vs cost (upper left is better)"
    if runs.empty:
        return _empty_figure(title)
    _require(runs, ["label", "model", "accuracy", "cost_per_1k"], "accuracy_vs_cost")
    df = with_failures(runs, runs)
    df["_label"] = _unique_labels(df["label"])
    df["_low"], df["_high"] = _intervals(df)
    df = df[df["accuracy"].notna() & df["cost_per_1k"].notna()]
    if df.empty:
        return _empty_figure(title, "No runs with both accuracy and cost yet")
    cost = df["cost_per_1k"].to_numpy(dtype=float)
    paid = cost[cost > 0]
    floor = paid.min() / FREE_FLOOR_FACTOR if paid.size else FREE_FLOOR_FALLBACK
    df["_x"] = np.where(cost > 0, cost, floor)
    df["_y"] = df["accuracy"].to_numpy(dtype=float) * 100
    df["_pareto"] = stats.pareto_front(df, "cost_per_1k", "accuracy").to_numpy()
    colors = model_colors(runs["model"])

    def hover(row: pd.Series) -> str:
        cost_text = "free / local" if row["cost_per_1k"] == 0 else f"{_usd(row['cost_per_1k'])} per 1k predictions"
        fail = failure_text(row["failed"], row.get("n"), failure_counts(row))
        return (
            f"<b>{row['_label']}</b>" + (" <b>DEGRADED</b>" if row["degraded"] else "")
            + f"<br>accuracy {row['_y']:.1f}% "
            f"({row['_low'] * 100:.1f}–{row['_high'] * 100:.1f}%)<br>{cost_text}"
            + (f"<br>{_n_text(row['n'])}" if "n" in row else "")
            + (f"<br>{fail}" if fail else "")
            + ("<br>on the Pareto front" if row["_pareto"] else "")
        )

    fig = go.Figure()
    for model, group in df.groupby("model", sort=True):
        program = group["program"].astype(str) if "program" in group else pd.Series("", index=group.index)
        symbols = [("circle-x" if bad else "circle") + ("-open" if p == "original" else "")
                   for p, bad in zip(program, group["degraded"], strict=True)]
        fig.add_trace(
            go.Scatter(
                x=group["_x"].to_numpy(),
                y=group["_y"].to_numpy(),
                mode="markers",
                name=str(model),
                # A degraded run's point wears a red ring (its accuracy counts failures as wrong).
                marker={"color": colors[str(model)], "size": 12, "symbol": symbols,
                        "line": {"width": [4 if bad else 2 for bad in group["degraded"]],
                                 "color": [DEGRADED_COLOR if bad else colors[str(model)] for bad in group["degraded"]]}},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": group["_high"].to_numpy() * 100 - group["_y"].to_numpy(),
                    "arrayminus": group["_y"].to_numpy() - group["_low"].to_numpy() * 100,
                },
                text=group["_label"].tolist(),
                hovertext=[hover(row) for _, row in group.iterrows()],
                hoverinfo="text",
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
            hovertext=[hover(row) for _, row in front.iterrows()],
            hoverinfo="text",
        )
    )
    fig.update_layout(
        title=title,
        xaxis={"title": "Cost per 1,000 predictions (USD, log scale)", "type": "log", "tickprefix": "$"},
        yaxis={"title": "Accuracy (%)", "ticksuffix": "%"},
        legend_title="Model",
    )
    return fig


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


def confusion_heatmap(cm: pd.DataFrame, title: str = "") -> go.Figure:
    """Heatmap of a confusion matrix (gold rows, predicted columns) with the count in every cell."""
    title = title or "Confusion matrix"
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
        xaxis={"title": "Predicted label", "side": "bottom"},
        yaxis={"title": "Gold label", "autorange": "reversed"},
    )
    return fig

