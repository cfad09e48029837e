"""Optimization charts: cost split, progress against the budget, break-even."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics import stats
from core.analytics.charts._base import (
    DEFAULT_HORIZON,
    REFLECTION_COLOR,
    STUDENT_COLOR,
    _empty_figure,
    _is_true,
    _require,
    _unique_labels,
    _usd,
)
from core.errors import ConfigError


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
    notes = [" · ".join(p for p in ("DEGRADED" if _is_true(row.get("degraded")) else "",
                                    optimization_failure_text(row)) if p) for row in opt.to_dict("records")]
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
                    f"<b>{lab}</b><br>{name.lower()} {_usd(v)} ({s:.0f}% of {_usd(t)})" + (f"<br>{note}" if note else "")
                    for lab, v, s, t, note in zip(labels, values, share, total, notes, strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title, barmode="stack", xaxis_title="Optimization run", yaxis_title="Cost (USD)",
        yaxis_tickprefix="$", legend_title="Calls",
    )
    return fig


def optimization_failure_text(row: Mapping[str, object]) -> str:
    """"3 failed reflection calls · 2 failed proposals" from an optimization run's columns ("" when none)."""
    parts = []
    for col, what in (("failed_student_calls", "failed student calls"),
                      ("failed_reflection_calls", "failed reflection calls"), ("failed_proposals", "failed proposals")):
        value = row.get(col)
        if value is not None and not pd.isna(value) and float(value) > 0:  # type: ignore[arg-type]
            parts.append(f"{int(value)} {what}")  # type: ignore[call-overload]
    return " · ".join(parts)


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

