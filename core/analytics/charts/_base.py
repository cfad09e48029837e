"""Shared parts of the chart functions: a DataFrame in, a ``plotly.graph_objects.Figure`` out.

Every number drawn is computed from the inputs; inputs are never modified. An empty table gives a
figure that says "No runs yet" instead of raising. Colors follow the model (see ``model_colors``),
so the same model looks the same on every chart of one runs table.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from core.analytics import stats
from core.analytics.failures import FAILURE_KINDS, counts_text  # the failure table's kinds, not the breaker's module
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

PALETTE: tuple[str, ...] = tuple(qualitative.Plotly)
EMPTY_MESSAGE = "No runs yet"
PARETO_COLOR = "#222222"
STUDENT_COLOR = "#636EFA"
REFLECTION_COLOR = "#FFA15A"
# Horizon of the break-even chart when the optimization never pays back and none is given.
DEFAULT_HORIZON = 100_000
# Log axes cannot show 0: free runs sit on a tick that reads "free", a decade below the cheapest paid run.
FREE_FLOOR_FALLBACK = 1e-3  # USD per 1k, when every run is free
# Charts sit in half-width columns: a legend in rows at the bottom of the figure leaves the plot its whole width.
BOTTOM_LEGEND: dict[str, object] = {"orientation": "h", "yref": "container", "yanchor": "bottom", "y": 0,
                                    "xanchor": "left", "x": 0}
LEGEND_ROW_PX = 22


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


# Axes ------------------------------------------------------------------------------------------


def _decade_text(exponent: int) -> str:
    """"$0.001", "$0.1", "$1", "$1,000": the USD label of 10**exponent."""
    return f"${10.0 ** exponent:.{-exponent}f}" if exponent < 0 else f"${10 ** exponent:,}"


def _usd_tick(value: float) -> str:
    """"$0.02", "$0.5", "$20": a tick between decades, with as many decimals as it needs."""
    return f"${value:,.{max(0, -int(np.floor(np.log10(value) + 1e-9)))}f}"


def log_usd_axis(values: Iterable[float], free_at: float | None = None) -> dict[str, object]:
    """Layout of a log USD axis over positive ``values``: labelled ticks at powers of ten ($0.01, $0.1, $1 …), and
    at 2 and 5 times them ($0.2, $0.5) when the axis spans two decades or less, never unlabelled minor ticks.

    The range runs from the decade below the smallest value to the decade above the largest (a single value gets
    the decades on both sides of it), so every point sits between two labelled ticks. ``free_at``, when given, is
    the power of ten where free runs are drawn: its tick reads "free".
    """
    logs = np.log10(np.array([v for v in values if v is not None and v > 0], dtype=float))
    if logs.size == 0:
        logs = np.array([np.log10(FREE_FLOOR_FALLBACK)])
    low, high = int(np.floor(logs.min() + 1e-9)), int(np.ceil(logs.max() - 1e-9))
    if low == high:
        low, high = low - 1, high + 1
    # A point exactly on the edge decade would be cut in half: pad it by a little.
    start = min(low - 0.03, logs.min() - 0.15)  # the edge decades' ticks stay inside the plot
    end = max(high + 0.03, logs.max() + 0.15)
    exponents = list(range(low, high + 1))
    vals = [10.0 ** e for e in exponents]
    texts = ["free" if free_at is not None and abs(e - np.log10(free_at)) < 1e-9 else _decade_text(e)
             for e in exponents]
    if high - low <= 2:
        between = [m * 10.0 ** e for e in exponents[:-1] for m in (2, 5)
                   if free_at is None or abs(e - np.log10(free_at)) >= 1e-9]  # nothing between "free" and paid
        vals, texts = vals + between, texts + [_usd_tick(v) for v in between]
        order = np.argsort(vals)
        vals, texts = [vals[i] for i in order], [texts[i] for i in order]
    return {"type": "log", "range": [float(start), float(end)], "tickvals": vals, "ticktext": texts,
            "tickmode": "array"}


def free_floor(costs: np.ndarray) -> float:
    """Where free runs sit on a log cost axis: the power of ten one decade below the cheapest paid run's decade."""
    paid = costs[costs > 0]
    if not paid.size:
        return FREE_FLOOR_FALLBACK
    return float(10.0 ** (np.floor(np.log10(paid.min()) + 1e-9) - 1))


def legend_height(plot: int, entries: int, per_row: int) -> int:
    """Figure height (px) for a plot area of about ``plot`` px with a legend of ``entries`` in rows under it."""
    return plot + LEGEND_ROW_PX * -(-entries // per_row)


def percent_range(low: Iterable[float], high: Iterable[float], pad: float = 5.0) -> list[float]:
    """A 0..100 % axis range around the values (in %), widened to whole tens; never narrower than 20 points."""
    lows = [v for v in low if v is not None and not np.isnan(v)]
    highs = [v for v in high if v is not None and not np.isnan(v)]
    if not lows or not highs:
        return [0.0, 100.0]
    start = max(0.0, np.floor((min(lows) - pad) / 10) * 10)
    end = min(100.0, np.ceil((max(highs) + pad) / 10) * 10)
    if end - start < 20:
        start, end = (max(0.0, end - 20), end) if end - 20 >= 0 else (0.0, 20.0)
    return [float(start), float(end)]


def count_range(values: Iterable[float], upto: float | None = None) -> list[float]:
    """A count axis from 0 to ``upto`` (or the largest value, if larger); never −1..1 for a single point at 0."""
    top = max([float(v) for v in values if v is not None and not np.isnan(v)] + [float(upto or 0)])
    return [0.0, top if top > 0 else 10.0]



# Failures --------------------------------------------------------------------------------------
# Columns of a run table that say how many examples failed, and of what kind (older runs lack them).
FAILURE_COLUMNS: tuple[str, ...] = ("failed", "failure_rate", "degraded", "accuracy_answered",
                                    *(f"failed_{kind}" for kind in FAILURE_KINDS))
OPTIMIZATION_FAILURE_COLUMNS: tuple[str, ...] = ("failed_student_calls", "failed_reflection_calls", "failed_proposals",
                                                 "degraded")
FAILED_COLOR = "#7f7f7f"
DEGRADED_COLOR = "#d62728"


def with_failures(frame: pd.DataFrame, runs: pd.DataFrame,
                  columns: Sequence[str] = FAILURE_COLUMNS) -> pd.DataFrame:
    """``frame`` with the failure ``columns`` it lacks, taken from ``runs`` by ``run_id``.

    A column neither has is NaN (``degraded``: False), so older runs read as "unknown", never as "no failures".
    """
    out = frame.copy()
    missing = [c for c in columns if c not in out.columns]
    present = [c for c in missing if c in runs.columns]
    if present and "run_id" in out.columns and "run_id" in runs.columns and not runs.empty:
        lookup = runs.drop_duplicates("run_id").set_index("run_id")[present]
        for col in present:
            out[col] = out["run_id"].map(lookup[col])
    for col in missing:
        if col not in out.columns:
            out[col] = False if col == "degraded" else float("nan")
    out["degraded"] = degraded_flags(out)
    return out


def degraded_flags(frame: pd.DataFrame) -> pd.Series:
    """The ``degraded`` column as booleans (missing, NaN or "false" read as False)."""
    if "degraded" not in frame:
        return pd.Series(False, index=frame.index, dtype=bool)
    return frame["degraded"].map(_is_true).astype(bool)


def _is_true(value: object) -> bool:
    # A tag reads "true"; a frame column may hold True, 1.0, NaN or None.
    return str(value).strip().lower() in ("true", "1", "1.0")


def failure_counts(row: Mapping[str, object]) -> dict[str, int]:
    """Failed examples by kind (kinds with a count above 0, commonest first), from a row's ``failed_<kind>`` columns."""
    counts: dict[str, int] = {}
    for kind in FAILURE_KINDS:
        value = row.get(f"failed_{kind}")
        if value is not None and not pd.isna(value) and float(value) > 0:
            counts[kind] = int(value)  # type: ignore[arg-type]
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def failure_text(failed: object, n: object = None, by_kind: Mapping[str, int] | None = None) -> str:
    """"12 failed (24.0%): 7 rate-limited, 5 timed out", "no failures", or "" when the run did not count them."""
    if failed is None or pd.isna(failed):
        return ""
    failed = int(failed)  # type: ignore[call-overload]
    if failed == 0:
        return "no failures"
    share = f" ({failed / float(n) * 100:.1f}%)" if n is not None and not pd.isna(n) and float(n) > 0 else ""
    kinds = counts_text(by_kind or {})
    return f"{failed} failed{share}" + (f": {kinds}" if kinds else "")
