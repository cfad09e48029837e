"""Tasks scored in [0, 1] beyond classification: how a metric is named on a chart, a run table read as scores, and
the distribution of the per-example scores of some runs.

Classification keeps "Accuracy" everywhere; any other task's numbers are its metric's mean score, named by the metric
("Score (token F1)"), so a chart never calls a token F1 an accuracy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.analytics.charts._base import BOTTOM_LEGEND, _empty_figure, _require, _series_colors, legend_height
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

ACCURACY = "accuracy"  # the metric tag of a classification run (and of any run from before the tag)
WEIGHTED = "weighted: "  # core.scoring.build.metric_label's prefix for several outputs
# A run table's accuracy columns and the score columns that stand for them when a task is scored in [0, 1].
SCORE_OF = {"accuracy": "score", "ci_low": "score_ci_low", "ci_high": "score_ci_high",
            "accuracy_ci_low": "score_ci_low", "accuracy_ci_high": "score_ci_high",
            "accuracy_answered": "score_answered"}
BIN = 10  # points of score per histogram bar
FIELD_PREFIX = "score_field_"  # an evaluation's metric per output field (tasks with several outputs)


def is_accuracy(metric: object) -> bool:
    """Is this a classification run's measure (or unknown: a run from before the metric tag)?"""
    return metric is None or metric != metric or str(metric).strip() in ("", ACCURACY)


MEAN_OF = ", mean of "  # core.scoring.metric_label's several fields scored alike


def metric_name(metric: object) -> str:
    """The metric as a screen names it: "accuracy", "token F1"; several outputs scored alike read as their one metric
    ("token F1, mean of drug, dose" and "weighted: drug token F1, dose token F1" are "token F1"), scored differently
    as the whole label."""
    if is_accuracy(metric):
        return ACCURACY
    text = str(metric).strip()
    if MEAN_OF in text and not text.startswith(WEIGHTED):
        return text.split(MEAN_OF, 1)[0]
    if not text.startswith(WEIGHTED):
        return text
    parts = text[len(WEIGHTED):].split(", ")
    labels = {p.split(" ", 1)[1] for p in parts if " " in p}
    return labels.pop() if len(labels) == 1 and all(" " in p for p in parts) else text


def measure_title(metric: object) -> str:
    """The axis title of a run's number: "Accuracy" for classification, else "Score (token F1)"."""
    return "Accuracy" if is_accuracy(metric) else f"Score ({metric_name(metric)})"


def one_metric(metrics: Iterable[object]) -> str:
    """The one metric of these runs (``metric`` column values); ConfigError when they mix metrics: a token F1 and an
    accuracy on one axis would read as the same number."""
    names = {ACCURACY if is_accuracy(m) else str(m).strip() for m in metrics}
    if len(names) > 1:
        raise ConfigError(f"These runs were scored by different metrics ({', '.join(sorted(names))}): one chart "
                          "shows one metric.", "Chart the runs of one metric at a time.")
    return names.pop() if names else ACCURACY


def as_scores(runs: pd.DataFrame, metric: object) -> pd.DataFrame:
    """``runs`` (not modified) with its accuracy columns holding the scores (``score``, ``score_ci_*``,
    ``score_answered``) when ``metric`` is not accuracy, so every accuracy chart draws the metric's mean score. A
    run without a score keeps its accuracy. Classification: ``runs`` as it is."""
    if is_accuracy(metric):
        return runs
    out = runs.copy()
    for column, score in SCORE_OF.items():
        if column in out and score in out:
            out[column] = pd.to_numeric(out[score], errors="coerce").fillna(out[column])
    return out


def field_score_table(runs: pd.DataFrame, metric: object = None) -> pd.DataFrame:
    """One row per run: ``run_id`` and each output field's mean score (the run table's ``score_field_<field>``
    columns that any of the runs logged, named by the field), in the order the ``metric`` label names the fields
    ("token F1, mean of drug, dose" or "weighted: drug token F1, dose numeric": the task's order), others after.
    Only ``run_id`` for one output."""
    text = str(metric)
    named = [p.split(" ", 1)[0] for p in text[len(WEIGHTED):].split(", ")] if text.startswith(WEIGHTED) \
        else text.split(MEAN_OF, 1)[1].split(", ") if MEAN_OF in text else []
    fields = sorted((c for c in runs.columns if str(c).startswith(FIELD_PREFIX) and runs[c].notna().any()),
                    key=lambda c: (named.index(c[len(FIELD_PREFIX):]) if c[len(FIELD_PREFIX):] in named
                                   else len(named), c))
    out = runs[["run_id", *fields]].rename(columns={c: c[len(FIELD_PREFIX):] for c in fields})
    return out.reset_index(drop=True)


def score_distribution(scores: pd.DataFrame, metric: object = "score",
                       how: Literal["histogram", "box"] = "histogram") -> go.Figure:
    """The per-example scores of some runs (columns ``run`` and ``score`` in [0, 1], one row per example and run):
    overlaid histograms in bars of 10 points, or one box per run (every example a point, the mean dashed). The
    hover gives each run's mean and how many examples scored 1 and 0."""
    title = f"{measure_title(metric)} per example"
    if scores.empty:
        return _empty_figure(title, "No per-example scores")
    _require(scores, ["run", "score"], "score_distribution")
    if how not in ("histogram", "box"):
        raise ConfigError(f"how must be 'histogram' or 'box', got {how!r}.")
    df = scores.assign(_run=scores["run"].astype(str), _pct=pd.to_numeric(scores["score"], errors="coerce") * 100)
    colors = _series_colors(df["_run"])
    fig = go.Figure()
    for run, group in df.groupby("_run", sort=False):
        values = group["_pct"].dropna().to_numpy(dtype=float)
        name = f"{run} (mean {values.mean():.1f} %, n={values.size})" if values.size else f"{run} (no scores)"
        summary = (f"<b>{run}</b><br>mean {values.mean() if values.size else float('nan'):.1f} %<br>"
                   f"{int(np.sum(values >= 100))} scored 100 %, {int(np.sum(values <= 0))} scored 0 % of {values.size}")
        if how == "histogram":
            fig.add_trace(go.Histogram(x=values, name=name, marker_color=colors[run], opacity=0.6,
                                       xbins={"start": 0, "end": 100 + BIN, "size": BIN},
                                       hovertemplate=f"{summary}<br>%{{y}} examples in %{{x}}<extra></extra>"))
        else:
            fig.add_trace(go.Box(x=values, name=name, marker_color=colors[run], boxpoints="all", jitter=0.4,
                                 pointpos=0, boxmean=True, orientation="h",
                                 hovertemplate=f"{summary}<br>this example %{{x:.1f}} %<extra></extra>"))
    fig.update_layout(title=title, xaxis={"title": f"{measure_title(metric)} (%)", "range": [-2, 112],
                                          "ticksuffix": "%"},
                      legend=BOTTOM_LEGEND, height=legend_height(380, len(fig.data), per_row=1))
    if how == "histogram":
        fig.update_layout(barmode="overlay", yaxis={"title": "Examples"})
    else:
        fig.update_layout(yaxis={"automargin": True, "showticklabels": False})
    return fig
