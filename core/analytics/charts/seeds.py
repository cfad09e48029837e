"""Repeatability: one optimization repeated with several seeds, each seed's test accuracy, the median and the range."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.analytics.charts._base import BOTTOM_LEGEND, STUDENT_COLOR, _empty_figure, _require, percent_range

ORIGINAL_COLOR = "#7f7f7f"
RANGE_COLOR = "rgba(99, 110, 250, 0.18)"
MEDIAN_COLOR = "#222222"


def _title(frame: pd.DataFrame) -> str:
    """The spread in words: the one repeat's range and median, or the narrowest and widest of several."""
    firsts = frame.drop_duplicates("repeat_key")
    widths = (firsts["max"] - firsts["min"]) * 100
    if len(firsts) == 1:
        r = firsts.iloc[0]
        return (f"Optimized test accuracy over {int(r['n_seeds'])} seeds: {r['min'] * 100:.1f}–{r['max'] * 100:.1f} % "
                f"(median {r['median'] * 100:.1f} %, a spread of {widths.iloc[0]:.1f} points)")
    return (f"Optimized test accuracy across seeds: spreads of {widths.min():.1f} to {widths.max():.1f} points "
            f"over {len(firsts)} repeated optimizations")


def seed_spread_chart(frame: pd.DataFrame) -> go.Figure:
    """Per repeated optimization (a ``core.tracking.runs.seed_spread`` frame), each seed's optimized test accuracy
    (filled) and original (hollow), the median marked and the optimized range as a bar; the title states the spread."""
    title = "Optimized test accuracy across seeds"
    if frame.empty:
        return _empty_figure(title, "No optimization repeated with 2 or more seeds yet")
    _require(frame, ["repeat_key", "label", "seed", "original", "optimized", "n_seeds", "median", "min", "max"],
             "seed_spread_chart")
    firsts = frame.drop_duplicates("repeat_key")
    names = _names(firsts)
    y = frame["repeat_key"].map(names)
    seeds = frame["seed"].astype(int).astype(str)
    fig = go.Figure()
    fig.add_trace(go.Bar(
        name="Range (optimized)", orientation="h", y=firsts["repeat_key"].map(names),
        base=firsts["min"] * 100, x=(firsts["max"] - firsts["min"]) * 100, marker_color=RANGE_COLOR, width=0.5,
        hovertemplate="%{y}<br>optimized %{base:.1f}–%{customdata:.1f} %<extra></extra>",
        customdata=firsts["max"] * 100,
    ))
    fig.add_trace(go.Scatter(
        name="Original (each seed)", mode="markers", y=y, x=frame["original"] * 100, customdata=seeds,
        marker=dict(symbol="circle-open", size=11, color=ORIGINAL_COLOR, line=dict(width=2)),
        hovertemplate="seed %{customdata}: original %{x:.1f} %<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        name="Optimized (each seed)", mode="markers", y=y, x=frame["optimized"] * 100, customdata=seeds,
        marker=dict(symbol="circle", size=10, color=STUDENT_COLOR, line=dict(width=1, color="white")),
        hovertemplate="seed %{customdata}: optimized %{x:.1f} %<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        name="Median (optimized)", mode="markers", y=firsts["repeat_key"].map(names), x=firsts["median"] * 100,
        marker=dict(symbol="line-ns", size=26, color=MEDIAN_COLOR, line=dict(width=3, color=MEDIAN_COLOR)),
        hovertemplate="median %{x:.1f} %<extra></extra>",
    ))
    fig.update_layout(
        title=dict(text=_title(frame), font=dict(size=14)), barmode="overlay", legend=BOTTOM_LEGEND,
        height=200 + 60 * len(firsts), margin=dict(l=10, r=10, t=60, b=70),
        xaxis=dict(title="test accuracy (%)", range=percent_range([*frame["original"] * 100, *frame["min"] * 100],
                                                                 [*frame["optimized"] * 100, *frame["max"] * 100])),
        yaxis=dict(autorange="reversed", automargin=True),
    )
    return fig


def _names(firsts: pd.DataFrame) -> dict[str, str]:
    """repeat_key → "<label> · N seeds", with the key where two repeats read the same."""
    names = {str(r["repeat_key"]): f"{r['label']} · {int(r['n_seeds'])} seeds" for r in firsts.to_dict("records")}
    seen = pd.Series(list(names.values())).value_counts()
    return {k: (f"{v} · {k[:6]}" if seen[v] > 1 else v) for k, v in names.items()}
