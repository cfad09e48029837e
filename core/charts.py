"""Pure chart functions: a DataFrame in, a ``plotly.graph_objects.Figure`` out.

Every number drawn is computed from the inputs; inputs are never modified. An empty table gives a
figure that says "No runs yet" instead of raising. Colors follow the model (see ``model_colors``),
so the same model looks the same on every chart of one runs table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core import stats
from core.errors import ConfigError

logger = logging.getLogger(__name__)

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly)
EMPTY_MESSAGE = "No runs yet"
PARETO_COLOR = "#222222"
STUDENT_COLOR = "#636EFA"
REFLECTION_COLOR = "#FFA15A"
# Horizon of the break-even chart when the optimization never pays back and none is given.
DEFAULT_HORIZON = 100_000
# Log axes cannot show 0: free runs sit this many times below the cheapest paid one.
FREE_FLOOR_FACTOR = 10.0
FREE_FLOOR_FALLBACK = 1e-3  # USD per 1k, when every run is free


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """A color per distinct model, assigned in sorted order so the mapping does not depend on row order."""
    names = sorted({str(m) for m in models})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _series_colors(names: Iterable[str]) -> dict[str, str]:
    # Order of first appearance: for series that are not models (runs, splits).
    unique = list(dict.fromkeys(str(n) for n in names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(unique)}


def _empty_figure(title: str, message: str = EMPTY_MESSAGE) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16}
    )
    fig.update_layout(title=title, xaxis={"visible": False}, yaxis={"visible": False})
    return fig


def _require(df: pd.DataFrame, columns: Sequence[str], chart: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{chart}: missing column(s) {missing}; got {list(df.columns)}.",
            f"Pass a table with columns {list(columns)}.",
        )


def _unique_labels(labels: Iterable[str]) -> list[str]:
    # Two runs with the same legend label would be drawn on top of each other: number the repeats.
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        label = str(label)
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out


def _intervals(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) accuracy bounds in 0..1: ci_low/ci_high (or accuracy_ci_*), else Wilson from n, else none."""
    acc = runs["accuracy"].to_numpy(dtype=float)
    low_col = "ci_low" if "ci_low" in runs else "accuracy_ci_low" if "accuracy_ci_low" in runs else None
    high_col = "ci_high" if "ci_high" in runs else "accuracy_ci_high" if "accuracy_ci_high" in runs else None
    low = np.array(runs[low_col], dtype=float) if low_col else np.full_like(acc, np.nan)
    high = np.array(runs[high_col], dtype=float) if high_col else np.full_like(acc, np.nan)
    n = runs["n"].to_numpy(dtype=float) if "n" in runs else np.full_like(acc, np.nan)
    for i in np.flatnonzero(np.isnan(low) | np.isnan(high)):
        if not np.isnan(n[i]) and n[i] > 0 and not np.isnan(acc[i]):
            w_low, w_high = stats.wilson_interval(round(acc[i] * n[i]), int(n[i]))
        else:
            w_low = w_high = acc[i]
        low[i] = w_low if np.isnan(low[i]) else low[i]
        high[i] = w_high if np.isnan(high[i]) else high[i]
    return low, high


def _n_text(n: float) -> str:
    return "n=?" if pd.isna(n) else f"n={int(n)}"


def _usd(value: float) -> str:
    if pd.isna(value):
        return "–"
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def accuracy_bars(runs: pd.DataFrame) -> go.Figure:
    """One bar per run label, accuracy in percent with its confidence interval, best first."""
    title = "Accuracy by run (bars: confidence interval)"
    if runs.empty:
        return _empty_figure(title)
    _require(runs, ["label", "model", "accuracy"], "accuracy_bars")
    df = runs.copy()
    df["_low"], df["_high"] = _intervals(df)
    df = df.sort_values("accuracy", ascending=False, kind="stable")
    acc = df["accuracy"].to_numpy(dtype=float) * 100
    low = df["_low"].to_numpy(dtype=float) * 100
    high = df["_high"].to_numpy(dtype=float) * 100
    n = df["n"] if "n" in df else pd.Series(np.nan, index=df.index)
    colors = model_colors(runs["model"])
    labels = _unique_labels(df["label"])
    text = [f"{a:.1f}% ({_n_text(k)})" for a, k in zip(acc, n, strict=True)]
    macro = df["macro_f1"] if "macro_f1" in df else pd.Series(np.nan, index=df.index)
    cost = df["cost_per_1k"] if "cost_per_1k" in df else pd.Series(np.nan, index=df.index)
    hover = [
        f"<b>{lab}</b><br>accuracy {a:.1f}% ({lo:.1f}–{hi:.1f}%)<br>{_n_text(k)}"
        + ("" if pd.isna(f1) else f"<br>macro-F1 {f1:.3f}")
        + ("" if pd.isna(c) else f"<br>{_usd(c)} per 1k predictions")
        for lab, a, lo, hi, k, f1, c in zip(labels, acc, low, high, n, macro, cost, strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=acc,
            marker_color=[colors[str(m)] for m in df["model"]],
            error_y={"type": "data", "symmetric": False, "array": high - acc, "arrayminus": acc - low},
            text=text,
            textposition="outside",
            cliponaxis=False,
            hovertext=hover,
            hoverinfo="text",
            name="accuracy",
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="Run",
        yaxis={"title": "Accuracy (%)", "range": [0, 100], "ticksuffix": "%"},
        showlegend=False,
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
    df = runs.copy()
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
        return (
            f"<b>{row['_label']}</b><br>accuracy {row['_y']:.1f}% "
            f"({row['_low'] * 100:.1f}–{row['_high'] * 100:.1f}%)<br>{cost_text}"
            + (f"<br>{_n_text(row['n'])}" if "n" in row else "")
            + ("<br>on the Pareto front" if row["_pareto"] else "")
        )

    fig = go.Figure()
    for model, group in df.groupby("model", sort=True):
        program = group["program"].astype(str) if "program" in group else pd.Series("", index=group.index)
        symbols = ["circle-open" if p == "original" else "circle" for p in program]
        fig.add_trace(
            go.Scatter(
                x=group["_x"].to_numpy(),
                y=group["_y"].to_numpy(),
                mode="markers",
                name=str(model),
                marker={"color": colors[str(model)], "size": 12, "symbol": symbols, "line": {"width": 2}},
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


def optimization_cost_split(opt: pd.DataFrame) -> go.Figure:
    """Stacked bars of what each optimization cost: student calls and reflection calls (USD)."""
    title = "Optimization cost: student vs reflection"
    if opt.empty:
        return _empty_figure(title)
    _require(opt, ["run_label", "student_cost_usd", "reflection_cost_usd"], "optimization_cost_split")
    labels = _unique_labels(opt["run_label"])
    student = opt["student_cost_usd"].fillna(0).to_numpy(dtype=float)
    reflection = opt["reflection_cost_usd"].fillna(0).to_numpy(dtype=float)
    total = student + reflection
    fig = go.Figure()
    for name, values, color in (
        ("Student", student, STUDENT_COLOR),
        ("Reflection", reflection, REFLECTION_COLOR),
    ):
        share = np.divide(values, total, out=np.zeros_like(values), where=total > 0) * 100
        fig.add_trace(
            go.Bar(
                x=labels,
                y=values,
                name=name,
                marker_color=color,
                hovertext=[
                    f"<b>{lab}</b><br>{name.lower()} {_usd(v)} ({s:.0f}% of {_usd(t)})"
                    for lab, v, s, t in zip(labels, values, share, total, strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title, barmode="stack", xaxis_title="Optimization run", yaxis_title="Cost (USD)",
        yaxis_tickprefix="$", legend_title="Calls",
    )
    return fig


def progress_chart(events: pd.DataFrame) -> go.Figure:
    """Best score so far (%) against metric calls, as a step line; candidate validation scores as dots."""
    title = "Optimization progress"
    if events.empty:
        return _empty_figure(title, "No progress yet")
    _require(events, ["metric_calls", "best_score"], "progress_chart")
    df = events.sort_values("metric_calls", kind="stable")
    calls = df["metric_calls"].to_numpy(dtype=float)
    best = df["best_score"].to_numpy(dtype=float) * 100
    fig = go.Figure(
        go.Scatter(
            x=calls,
            y=best,
            mode="lines+markers",
            name="best so far",
            line={"shape": "hv"},
            hovertemplate="after %{x:,.0f} metric calls<br>best score %{y:.1f}%<extra></extra>",
        )
    )
    if "val_score" in df:
        scored = df[df["val_score"].notna()]
        fig.add_trace(
            go.Scatter(
                x=scored["metric_calls"].to_numpy(dtype=float),
                y=scored["val_score"].to_numpy(dtype=float) * 100,
                mode="markers",
                name="candidate (validation)",
                marker={"symbol": "circle-open", "size": 8},
                hovertemplate="after %{x:,.0f} metric calls<br>candidate score %{y:.1f}%<extra></extra>",
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="Metric calls (count)",
        yaxis={"title": "Validation score (%)", "range": [0, 100], "ticksuffix": "%"},
    )
    return fig


def break_even_chart(
    optimization_cost: float,
    cost_per_1k_before: float,
    cost_per_1k_after: float,
    max_predictions: int | None = None,
    labels: tuple[str, str] = ("before", "after (incl. optimization)"),
) -> go.Figure:
    """Cumulative cost against predictions, before and after optimization, with the break-even point marked.

    The x-range is ``max_predictions`` if given, else twice the break-even, else DEFAULT_HORIZON.
    """
    if max_predictions is not None and max_predictions <= 0:
        raise ConfigError(f"max_predictions must be positive, got {max_predictions}.")
    breakeven = stats.break_even_predictions(optimization_cost, cost_per_1k_before, cost_per_1k_after)
    if max_predictions is not None:
        horizon = float(max_predictions)
    elif breakeven:
        horizon = 2 * breakeven
    else:
        horizon = float(DEFAULT_HORIZON)
    points = {0.0, horizon}
    if breakeven is not None and breakeven <= horizon:
        points.add(float(breakeven))
    x = np.array(sorted(points))
    before = x * cost_per_1k_before / 1000
    after = optimization_cost + x * cost_per_1k_after / 1000
    fig = go.Figure()
    for name, y in zip(labels, (before, after), strict=True):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=name,
                hovertemplate=f"{name}<br>%{{x:,.0f}} predictions<br>total $%{{y:,.4f}}<extra></extra>",
            )
        )
    if breakeven is None:
        title = "Never pays back: the optimized program is not cheaper per prediction"
    else:
        title = f"Pays back after {breakeven:,.0f} predictions"
        fig.add_vline(
            x=breakeven,
            line_dash="dash",
            annotation_text=f"break-even: {breakeven:,.0f} predictions ({_usd(optimization_cost)} recovered)",
            annotation_position="top left",
        )
    fig.update_layout(
        title=title,
        xaxis={"title": "Predictions (count)", "range": [0, horizon]},
        yaxis={"title": "Cumulative cost (USD)", "tickprefix": "$"},
    )
    return fig


def label_distribution(counts: pd.DataFrame, title: str = "") -> go.Figure:
    """Examples per label as bars; with a ``split`` column, one group of bars per label and a bar per split."""
    title = title or "Label distribution"
    if counts.empty:
        return _empty_figure(title, "No examples yet")
    _require(counts, ["label", "count"], "label_distribution")
    groups = list(counts.groupby("split", sort=False)) if "split" in counts else [("examples", counts)]
    colors = _series_colors(name for name, _ in groups)
    fig = go.Figure()
    for name, group in groups:
        values = group["count"].to_numpy(dtype=float)
        total = values.sum()
        share = values / total * 100 if total else np.zeros_like(values)
        fig.add_trace(
            go.Bar(
                x=group["label"].astype(str).tolist(),
                y=values,
                name=str(name),
                marker_color=colors[str(name)],
                text=[f"{v:.0f}" for v in values],
                textposition="outside",
                cliponaxis=False,
                hovertext=[
                    f"<b>{lab}</b> ({name})<br>{v:.0f} examples, {s:.1f}% of {total:.0f}"
                    for lab, v, s in zip(group["label"], values, share, strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        xaxis_title="Label",
        yaxis_title="Examples (count)",
        showlegend="split" in counts,
        legend_title="Split",
    )
    return fig
