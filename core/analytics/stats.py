"""Honest statistics for comparing classifiers: intervals, paired tests, per-label metrics, Pareto fronts.

Pure functions over plain sequences and DataFrames; numpy only (the normal quantile comes from the
standard library). Small samples are the norm here, so every accuracy comes with its uncertainty.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ConfigError

logger = logging.getLogger(__name__)

UNPARSED = "(unparsed)"


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}.", "Use e.g. 0.95.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (low, high) in 0..1 for ``correct`` successes out of ``n``; n=0 gives (0.0, 1.0)."""
    z = _z(confidence)
    if n < 0 or correct < 0 or correct > n:
        raise ConfigError(f"Need 0 <= correct <= n, got correct={correct}, n={n}.")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp: at p=0 or p=1 the bound is exact in theory but off by rounding in floating point.
    low = 0.0 if correct == 0 else max(0.0, center - half)
    high = 1.0 if correct == n else min(1.0, center + half)
    return low, high


def _paired(a: Sequence[Any], b: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape:
        raise ConfigError(
            f"Paired comparison needs two equally long 1-D sequences, got lengths {x.size} and {y.size}.",
            "Score both programs on the same examples, in the same order.",
        )
    return x, y


def paired_bootstrap_diff(
    a: Sequence[bool | float],
    b: Sequence[bool | float],
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Paired bootstrap of mean(b) - mean(a) over the same examples.

    Returns diff, a percentile interval (ci_low, ci_high) and a two-sided p_value: twice the share
    of bootstrap differences on the other side of zero from the observed one (capped at 1).
    Empty input gives NaN for everything.
    """
    _z(confidence)
    if n_boot < 1:
        raise ConfigError(f"n_boot must be at least 1, got {n_boot}.", "Use e.g. 2000.")
    x, y = _paired(a, b)
    n = x.size
    if n == 0:
        return {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    d = y - x
    diff = float(d.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = d[idx].mean(axis=1)
    alpha = 1 - confidence
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    if diff > 0:
        other_side = float(np.mean(boots <= 0))
    elif diff < 0:
        other_side = float(np.mean(boots >= 0))
    else:
        other_side = 1.0
    return {
        "diff": diff,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": min(1.0, 2 * other_side),
    }


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> dict[str, float]:
    """Exact two-sided McNemar test on paired right/wrong flags.

    b_only counts examples b gets right and a wrong, a_only the reverse; p_value is the exact
    binomial(b_only + a_only, 1/2) two-sided probability (1.0 when they never disagree).
    """
    x, y = _paired(a, b)
    xa = x.astype(bool)
    yb = y.astype(bool)
    b_only = int(np.sum(yb & ~xa))
    a_only = int(np.sum(xa & ~yb))
    m = a_only + b_only
    k = min(a_only, b_only)
    if m == 0:
        p = 1.0
    else:
        tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
        p = min(1.0, 2 * tail)
    return {"b_only": b_only, "a_only": a_only, "p_value": p}


def _check_pairs(gold: Sequence[Any], pred: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    g, p = list(gold), list(pred)
    if len(g) != len(p):
        raise ConfigError(f"gold and pred differ in length ({len(g)} vs {len(p)}).", "Pass one prediction per example.")
    return g, p


def per_label_metrics(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Hashable]) -> pd.DataFrame:
    """Precision, recall, F1 and support (gold count) per label; a zero division gives 0.0.

    A prediction outside ``labels`` (e.g. None for an unparsed answer) is a miss for its gold label.
    """
    g, p = _check_pairs(gold, pred)
    rows = []
    for label in labels:
        tp = sum(1 for gi, pi in zip(g, p, strict=True) if gi == label and pi == label)
        predicted = sum(1 for pi in p if pi == label)
        support = sum(1 for gi in g if gi == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"label": label, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return pd.DataFrame(rows, columns=["label", "precision", "recall", "f1", "support"])


def macro_f1(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Hashable]) -> float:
    """Unweighted mean of per-label F1 over ``labels`` (0.0 when there are no labels)."""
    table = per_label_metrics(gold, pred, labels)
    return float(table["f1"].mean()) if len(table) else 0.0


def confusion_matrix(gold: Sequence[Any], pred: Sequence[Any], labels: Sequence[Hashable]) -> pd.DataFrame:
    """Counts with gold labels as rows and predicted labels as columns.

    Predictions outside ``labels`` (None, free text) are counted in an extra "(unparsed)" column,
    present only when there are some. Gold values outside ``labels`` get extra rows after them.
    """
    g, p = _check_pairs(gold, pred)
    known = list(labels)
    known_set = set(known)
    rows = known + [v for v in dict.fromkeys(g) if v not in known_set]
    has_unparsed = any(pi not in known_set for pi in p)
    cols = known + ([UNPARSED] if has_unparsed else [])
    tally = Counter((gi, pi if pi in known_set else UNPARSED) for gi, pi in zip(g, p, strict=True))
    return pd.DataFrame([[tally.get((r, c), 0) for c in cols] for r in rows], index=pd.Index(rows, name="gold"),
                        columns=pd.Index(cols, name="predicted"), dtype=int)


def percentile(values: Sequence[float | None], q: float) -> float:
    """The q-th percentile (0..100, linear interpolation) ignoring NaN/None; NaN when nothing is left."""
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        return math.nan
    return float(np.percentile(arr, q))


def pareto_front(df: pd.DataFrame, x: str, y: str) -> pd.Series:
    """True for rows no other row dominates, minimizing ``x`` and maximizing ``y``.

    A row is dominated by one with x <= and y >= and at least one strict; identical rows do not
    dominate each other. Rows with a missing x or y are never on the front.
    """
    for col in (x, y):
        if col not in df.columns:
            raise ConfigError(f"pareto_front: no column {col!r} (have {list(df.columns)}).")
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(dtype=float)
    valid = ~(np.isnan(xs) | np.isnan(ys))
    front = np.zeros(len(xs), dtype=bool)
    if valid.any():
        # O(n log n): a row is on the front when it has the best y of its x and beats every y at a smaller x.
        x, y = xs[valid], ys[valid]
        unique_x, group = np.unique(x, return_inverse=True)
        best_at = np.full(unique_x.size, -np.inf)
        np.maximum.at(best_at, group, y)
        best_before = np.concatenate(([-np.inf], np.maximum.accumulate(best_at)[:-1]))
        front[valid] = (y == best_at[group]) & (y > best_before[group])
    return pd.Series(front, index=df.index, name="pareto", dtype=bool)


def break_even_predictions(
    optimization_cost: float, cost_per_1k_before: float, cost_per_1k_after: float
) -> float | None:
    """Predictions after which a one-time optimization cost is paid back by cheaper predictions.

    optimization_cost / ((before - after) / 1000); None when after >= before (it never pays back).
    """
    for name, value in (
        ("optimization_cost", optimization_cost),
        ("cost_per_1k_before", cost_per_1k_before),
        ("cost_per_1k_after", cost_per_1k_after),
    ):
        if value is None or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite, non-negative number of USD, got {value!r}.")
    saving_per_prediction = (cost_per_1k_before - cost_per_1k_after) / 1000
    if saving_per_prediction <= 0:
        return None
    return optimization_cost / saving_per_prediction


def paired_summary(before: pd.DataFrame, after: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired comparison of two evaluations' records on the same examples (matched by ``idx``).

    Returns n, accuracy_before, accuracy_after, diff (after - before) with its bootstrap interval and
    p-value, and McNemar's exact test (after_only / before_only: examples only one of them gets right).
    """
    key = "idx" if "idx" in before and "idx" in after else None
    if key:
        a = before[[key, "correct"] + (["gold"] if "gold" in before else [])]
        b = after[[key, "correct"] + (["gold"] if "gold" in after else [])]
        merged = a.merge(b, on=key, suffixes=("_a", "_b"))
        if len(merged) != len(a) or len(merged) != len(b):
            raise ConfigError(
                f"The two runs were not scored on the same examples ({len(a)} and {len(b)} records, {len(merged)} shared).",
                "Compare the original and optimized evaluations of one optimization (same test split).",
            )
        if "gold_a" in merged and not (merged["gold_a"].astype(str) == merged["gold_b"].astype(str)).all():
            raise ConfigError("The two runs' examples differ (different gold labels at the same index).",
                              "Compare runs made on the same test split (same task, sizes and seed).")
        x, y = merged["correct_a"], merged["correct_b"]
    else:
        x, y = before["correct"], after["correct"]
    x = _flags(x)
    y = _flags(y)
    boot = paired_bootstrap_diff(x, y, n_boot=n_boot, seed=seed)
    test = mcnemar_exact(x, y)
    n = len(x)
    return {
        "n": float(n),
        "accuracy_before": float(sum(x) / n) if n else float("nan"),
        "accuracy_after": float(sum(y) / n) if n else float("nan"),
        "diff": boot["diff"], "ci_low": boot["ci_low"], "ci_high": boot["ci_high"], "p_bootstrap": boot["p_value"],
        "after_only": float(test["b_only"]), "before_only": float(test["a_only"]), "p_mcnemar": test["p_value"],
    }


def _flags(values: Iterable[Any]) -> list[bool]:
    out = []
    for v in values:
        if isinstance(v, str):
            out.append(v.strip().lower() in ("true", "1", "yes"))
        else:
            out.append(bool(v) if v == v else False)
    return out




def newcombe_diff_interval(correct_a: int, n_a: int, correct_b: int, n_b: int,
                           confidence: float = 0.95) -> tuple[float, float]:
    """Interval (low, high) of p_b - p_a for two independent samples (Newcombe's hybrid score method)."""
    if n_a <= 0 or n_b <= 0:
        raise ConfigError(f"Need examples on both sides, got n={n_a} and n={n_b}.")
    p_a, p_b = correct_a / n_a, correct_b / n_b
    low_a, high_a = wilson_interval(correct_a, n_a, confidence)
    low_b, high_b = wilson_interval(correct_b, n_b, confidence)
    diff = p_b - p_a
    return (diff - math.hypot(p_b - low_b, high_a - p_a), diff + math.hypot(high_b - p_b, p_a - low_a))


def trade_off(reference_records: pd.DataFrame, optimized_records: pd.DataFrame,
              n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Accuracy of an optimized student against a reference run (the model it would replace), from their records.

    ``diff`` is optimized - reference accuracy. When both runs scored the same examples (same ``idx`` set, or the
    same number of rows without ``idx``, and the same ``gold``/``text`` where both have them) the comparison is
    ``paired``: a paired bootstrap interval and McNemar's exact test. Otherwise the interval is Newcombe's for two
    independent samples and ``p_mcnemar`` is NaN. ``worse`` is True only for a paired interval entirely below zero.
    """
    for name, frame in (("reference", reference_records), ("optimized", optimized_records)):
        if frame is None or "correct" not in frame or frame.empty:
            raise ConfigError(f"The {name} run has no per-example records to compare.",
                              "Pick a finished evaluation; its records.csv lists one row per example.")
    pairs = _pairs(reference_records, optimized_records)
    if pairs is not None:
        ref, opt = pairs
        boot = paired_bootstrap_diff(ref, opt, n_boot=n_boot, seed=seed)
        ci_low, ci_high, p = boot["ci_low"], boot["ci_high"], mcnemar_exact(ref, opt)["p_value"]
    else:
        ref, opt = _flags(reference_records["correct"]), _flags(optimized_records["correct"])
        ci_low, ci_high = newcombe_diff_interval(sum(ref), len(ref), sum(opt), len(opt))
        p = math.nan
    acc_ref, acc_opt = sum(ref) / len(ref), sum(opt) / len(opt)
    return {
        "diff": acc_opt - acc_ref, "ci_low": float(ci_low), "ci_high": float(ci_high), "p_mcnemar": float(p),
        "n": len(opt), "n_reference": len(ref), "n_optimized": len(opt), "paired": pairs is not None,
        "worse": pairs is not None and ci_high < 0,
        "accuracy_reference": acc_ref, "accuracy_optimized": acc_opt,
    }


def _pairs(a: pd.DataFrame, b: pd.DataFrame) -> tuple[list[bool], list[bool]] | None:
    """Right/wrong flags of a and b in example order when both scored the same examples, else None."""
    if "idx" in a and "idx" in b:
        a = a.drop_duplicates("idx", keep="last").set_index("idx")
        b = b.drop_duplicates("idx", keep="last").set_index("idx")
        if set(a.index) != set(b.index):
            return None
        b = b.loc[a.index]
    elif len(a) != len(b):
        return None
    else:
        a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for col in ("gold", "text"):
        if col in a and col in b and not (a[col].astype(str).to_numpy() == b[col].astype(str).to_numpy()).all():
            return None
    return _flags(a["correct"]), _flags(b["correct"])
