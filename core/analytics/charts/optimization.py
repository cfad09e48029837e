"""Optimization charts: cost split, progress against the budget, break-even."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics import stats
from core.analytics.charts._base import (
    BOTTOM_LEGEND,
    DEFAULT_HORIZON,
    REFLECTION_COLOR,
    STUDENT_COLOR,
    _empty_figure,
    _is_true,
    _require,
    _unique_labels,
    _usd,
    count_range,
    legend_height,
)
from core.config.errors import ConfigError

ACCURACY = "accuracy"  # the metric of a classification run (and of every run made before runs named theirs)
# Outcomes of an optimization run that did not finish its whole budget (``outcome`` column of the frame).
UNFINISHED = ("capped", "cancelled", "failed", "running", "interrupted")


def optimization_cost_split(opt: pd.DataFrame) -> go.Figure:
    """Horizontal stacked bars of what each optimization spent (what the providers billed; cache hits are free):
    student calls and reflection calls (USD). A run that logged no spend (an older failed run) reads "spend not
    recorded", never $0.

    Bars are labelled by the frame's ``run_label`` (student ← reflection, budget, result); a capped, cancelled or
    failed run (``outcome``) is hatched and says so at the end of its bar. Repeated labels get the short run id.
    """
    title = "Optimization spend: student vs reflection"
    if opt.empty:
        return _empty_figure(title)
    _require(opt, ["run_label", "student_cost_usd", "reflection_cost_usd"], "optimization_cost_split")
    rows = opt.to_dict("records")
    outcomes = [str(row.get("outcome") or "") for row in rows]
    labels = _run_labels(opt, outcomes)
    student = opt["student_cost_usd"].fillna(0).to_numpy(dtype=float)
    reflection = opt["reflection_cost_usd"].fillna(0).to_numpy(dtype=float)
    total = student + reflection
    unknown = (opt["student_cost_usd"].isna() & opt["reflection_cost_usd"].isna()).to_numpy(dtype=bool)
    notes = [" · ".join(p for p in ("DEGRADED" if _is_true(row.get("degraded")) else "",
                                    optimization_failure_text(row), _stop_reason(row)) if p) for row in rows]
    unfinished = [o in UNFINISHED for o in outcomes]
    fig = go.Figure()
    for name, values, color in (
        ("Student", student, STUDENT_COLOR),
        ("Reflection", reflection, REFLECTION_COLOR),
    ):
        share = np.divide(values, total, out=np.zeros_like(values), where=total > 0) * 100
        fig.add_trace(
            go.Bar(
                y=labels,
                x=values,
                orientation="h",
                name=name,
                marker={"color": color, "pattern": {"shape": ["/" if u else "" for u in unfinished],
                                                    "fillmode": "overlay", "fgcolor": "white", "solidity": 0.3}},
                hovertext=[
                    f"<b>{lab}</b><br>{name.lower()} {_usd(v)} ({s:.0f}% of {_usd(t)})"
                    + (f"<br>{note}" if note else "")
                    for lab, v, s, t, note in zip(labels, values, share, total, notes, strict=True)
                ],
                hoverinfo="text",
            )
        )
    fig.add_trace(go.Scatter(
        y=labels, x=total, mode="text", textposition="middle right", cliponaxis=False, showlegend=False,
        hoverinfo="skip", name="total",
        text=[(" spend not recorded" if n else f" {_usd(t)}") + (f" · {o.upper()}" if u else "")
              for t, o, u, n in zip(total, outcomes, unfinished, unknown, strict=True)],
    ))
    top = float(total.max()) if len(total) else 0.0
    fig.update_layout(
        title=title, barmode="stack", yaxis={"title": None, "autorange": "reversed", "automargin": True},
        xaxis={"title": "Spend (USD)", "tickprefix": "$", "range": [0, top * 1.35 if top > 0 else 1.0]},
        legend_title="Calls", height=180 + 40 * len(labels),
    )
    return fig


def _run_labels(opt: pd.DataFrame, outcomes: list[str]) -> list[str]:
    # The run label says capped / cancelled itself (core.tracking.runs); an older frame gets the outcome appended here.
    labels = [str(lab) + (f" · {o}" if o in UNFINISHED and o not in str(lab) else "")
              for lab, o in zip(opt["run_label"], outcomes, strict=True)]
    if "run_id" in opt and len(set(labels)) < len(labels):
        repeated = {lab for lab in labels if labels.count(lab) > 1}
        labels = [f"{lab} · {str(rid)[:8]}" if lab in repeated else lab
                  for lab, rid in zip(labels, opt["run_id"], strict=True)]
    return _unique_labels(labels)


def _stop_reason(row: Mapping[str, object]) -> str:
    reason = row.get("stop_reason")
    return "" if reason is None or pd.isna(reason) or not str(reason) else f"stopped: {reason}"  # type: ignore[arg-type]


def optimization_failure_text(row: Mapping[str, object]) -> str:
    """"3 failed reflection calls · 2 failed proposals" from an optimization run's columns ("" when none)."""
    parts = []
    for col, what in (("failed_student_calls", "failed student calls"),
                      ("failed_reflection_calls", "failed reflection calls"), ("failed_proposals", "failed proposals")):
        value = row.get(col)
        if value is not None and not pd.isna(value) and float(value) > 0:  # type: ignore[arg-type]
            parts.append(f"{int(value)} {what}")  # type: ignore[call-overload]
    return " · ".join(parts)


def progress_chart(history: pd.DataFrame, budget: int | None = None) -> go.Figure:
    """Best score so far (%) against metric calls, as a step line; candidate validation scores as dots.

    The x-axis spans 0..``budget`` (or the calls used, when GEPA overshoots it), with the budget marked; a single
    point still gets a 0..budget (or 0..10) count axis and the 0..100 % score axis.
    """
    title = "Optimization progress"
    if budget is not None and budget <= 0:
        raise ConfigError(f"progress_chart: budget must be a positive number of metric calls, got {budget}.",
                          "Pass the job's metric_calls_budget, or None when it is not known.")
    if history.empty:
        return _empty_figure(title, "No progress yet")
    _require(history, ["metric_calls", "best_score"], "progress_chart")
    df = history.sort_values("metric_calls", kind="stable")
    calls = df["metric_calls"].to_numpy(dtype=float)
    best = df["best_score"].to_numpy(dtype=float) * 100
    fig = go.Figure(
        go.Scatter(
            x=calls,
            y=best,
            mode="lines+markers",
            name="best so far",
            line={"shape": "hv"},
            cliponaxis=False,
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
                cliponaxis=False,
                hovertemplate="after %{x:,.0f} metric calls<br>candidate score %{y:.1f}%<extra></extra>",
            )
        )
    x_range = count_range(calls, budget)
    if budget is not None:
        fig.add_vline(x=budget, line_dash="dot", line_color="#888888", annotation_text=f"budget {budget:,}",
                      annotation_position="top left")
    fig.update_layout(
        title=title,
        xaxis={"title": "Metric calls (count)", "range": x_range, **({"dtick": 1} if x_range[1] <= 10 else {})},
        yaxis={"title": "Validation score (%)", "range": [0, 100], "ticksuffix": "%"},
    )
    return fig


def break_even_chart(
    optimization_cost: float,
    reference_cost_per_1k: float,
    optimized_cost_per_1k: float,
    labels: tuple[str, str] = ("reference", "optimized (incl. optimization)"),
    trade_off: Mapping[str, Any] | None = None,
    *,
    max_predictions: int | None = None,
    metric: str = ACCURACY,
) -> go.Figure:
    """Cumulative cost against predictions, reference model vs optimized student, with the break-even point marked.

    The title states the accuracy trade-off (``trade_off``: ``stats.trade_off``'s result) and says "Pays back after
    N predictions" only when the optimized student is not significantly worse; when it is, the title says so and
    that it is cheaper, not a replacement. The x-range is ``max_predictions`` if given, else twice the break-even,
    else DEFAULT_HORIZON. ``metric``: what the trade-off compares, "accuracy", or a task's score ("token F1": its
    ``accuracy_*`` keys are then mean scores, and the words name the metric).
    """
    if max_predictions is not None and max_predictions <= 0:
        raise ConfigError(f"max_predictions must be positive, got {max_predictions}.")
    breakeven = stats.break_even_predictions(optimization_cost, reference_cost_per_1k, optimized_cost_per_1k)
    horizon = _horizon(breakeven, max_predictions)
    points = {0.0, horizon}
    if breakeven is not None and breakeven <= horizon:
        points.add(float(breakeven))
    x = np.array(sorted(points))
    reference = x * reference_cost_per_1k / 1000
    optimized = optimization_cost + x * optimized_cost_per_1k / 1000
    fig = go.Figure()
    for name, y in zip(labels, (reference, optimized), strict=True):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines",
                name=name,
                hovertemplate=f"{name}<br>%{{x:,.0f}} predictions<br>total $%{{y:,.4f}}<extra></extra>",
            )
        )
    worse = bool(trade_off and trade_off.get("worse"))
    if breakeven is not None:
        fig.add_vline(
            x=breakeven,
            line_dash="dash",
            annotation_text=(f"costs even after {breakeven:,.0f} predictions" if worse else
                             f"break-even: {breakeven:,.0f} predictions ({_usd(optimization_cost)} recovered)"),
            annotation_position="top left",
        )
    fig.update_layout(
        title={"text": break_even_headline(breakeven, trade_off, metric), "font": {"size": 16},
               "subtitle": {"text": trade_off_detail(trade_off, metric)}},
        margin={"t": 90},
        legend=BOTTOM_LEGEND,
        height=legend_height(450, 2, per_row=1),
        xaxis={"title": "Predictions (count)", "range": [0, horizon]},
        yaxis={"title": "Cumulative cost (USD)", "tickprefix": "$"},
    )
    return fig


def _horizon(breakeven: float | None, max_predictions: int | None) -> float:
    """The break-even chart's x-range: ``max_predictions`` if given, else twice the break-even, else DEFAULT_HORIZON."""
    if max_predictions is not None:
        return float(max_predictions)
    if breakeven:
        return 2 * breakeven
    return float(DEFAULT_HORIZON)


def break_even_headline(breakeven: float | None, trade_off: Mapping[str, Any] | None,
                        metric: str = ACCURACY) -> str:
    """The break-even chart's title: pay-back (only when not significantly worse) and the accuracy (or score)
    trade-off."""
    if trade_off and trade_off.get("worse"):
        points = abs(float(trade_off["diff"])) * 100
        tail = "it is cheaper, not a replacement" if breakeven is not None else "and it is not cheaper either"
        worse = "less accurate" if metric == ACCURACY else f"of {metric} lower"
        return f"The optimized student is {points:.1f} points {worse} (significant): {tail}"
    accuracy = _accuracy_phrase(trade_off, metric)
    if breakeven is None:
        return f"Never pays back: the optimized student is not cheaper per prediction, {accuracy}"
    return f"Pays back after {breakeven:,.0f} predictions, {accuracy}"


def _accuracy_phrase(trade_off: Mapping[str, Any] | None, metric: str = ACCURACY) -> str:
    if not trade_off:
        return f"{metric} not compared"
    diff = float(trade_off["diff"]) * 100
    low, high = float(trade_off["ci_low"]), float(trade_off["ci_high"])
    if not trade_off.get("paired"):
        qualifier = "on different examples, not a paired test"
    else:
        qualifier = "significant" if trade_off.get("significant", low > 0 or high < 0) else "not significant"
    if abs(diff) < 0.05:
        return f"at the same {metric} ({qualifier})"
    return f"at {abs(diff):.1f} points {'higher' if diff > 0 else 'lower'} {metric} ({qualifier})"


def trade_off_detail(trade_off: Mapping[str, Any] | None, metric: str = ACCURACY) -> str:
    """"Reference 45.0% vs optimized 31.7% on the same 60 examples; 95% interval …" (the chart's subtitle); a task's
    score reads "Reference mean token F1 0.672 vs optimized 0.972 …" with its paired test."""
    if not trade_off:
        return f"Pick evaluations with per-example records to compare {metric} too."
    if metric != ACCURACY:
        return _score_detail(trade_off, metric)
    ref, opt = float(trade_off["accuracy_reference"]) * 100, float(trade_off["accuracy_optimized"]) * 100
    low, high = float(trade_off["ci_low"]) * 100, float(trade_off["ci_high"]) * 100
    if trade_off.get("paired"):
        p = trade_off.get("p_value", trade_off.get("p_mcnemar"))
        p = float("nan") if p is None else float(p)  # None: too few discordant examples to test
        return (f"Reference {ref:.1f}% vs optimized {opt:.1f}% on the same {int(trade_off['n'])} examples; "
                f"paired 95% interval {low:+.1f} to {high:+.1f} points"
                + ("" if np.isnan(p) else f", McNemar {stats.p_text(p)}"))
    return (f"Reference {ref:.1f}% (n={int(trade_off.get('n_reference', 0))}) vs optimized {opt:.1f}% "
            f"(n={int(trade_off.get('n_optimized', trade_off['n']))}) on different examples; "
            f"unpaired 95% interval {low:+.1f} to {high:+.1f} points")


def _score_detail(trade_off: Mapping[str, Any], metric: str) -> str:
    ref, opt = float(trade_off["accuracy_reference"]), float(trade_off["accuracy_optimized"])
    low, high = float(trade_off["ci_low"]) * 100, float(trade_off["ci_high"]) * 100
    if trade_off.get("paired"):
        p = trade_off.get("p_value")
        test = str(trade_off.get("test") or "paired test")
        return (f"Reference mean {metric} {ref:.3f} vs optimized {opt:.3f} on the same {int(trade_off['n'])} "
                f"examples; paired 95% interval {low:+.1f} to {high:+.1f} points"
                + ("" if p is None else f", {test} {stats.p_text(float(p))}"))
    return (f"Reference mean {metric} {ref:.3f} (n={int(trade_off.get('n_reference', 0))}) vs optimized {opt:.3f} "
            f"(n={int(trade_off.get('n_optimized', trade_off['n']))}) on different examples; "
            f"unpaired 95% interval {low:+.1f} to {high:+.1f} points")
