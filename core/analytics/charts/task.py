"""Task charts: examples per label and split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics.charts._base import (
    _empty_figure,
    _require,
    _series_colors,
)


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
