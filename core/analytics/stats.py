"""Honest statistics for comparing classifiers: intervals, paired tests, per-label metrics, Pareto fronts.

Pure functions over plain sequences and DataFrames; numpy only (the normal quantile comes from the
standard library). Small samples are the norm here, so every accuracy comes with its uncertainty.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from core.analytics.flips import aligned_records, flags, require_records
from core.config.errors import ConfigError

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


MIN_DISCORDANT = 6


def newcombe_paired_interval(both: int, a_only: int, b_only: int, neither: int,
                             confidence: float = 0.95) -> tuple[float, float]:
    """Interval (low, high) of accuracy(b) - accuracy(a) on the same examples: Newcombe's method 10.

    Newcombe RG (1998), "Improved confidence intervals for the difference between binomial proportions based on
    paired data", Stat Med 17:2635-2650: the two accuracies' Wilson score limits, squared and added with their
    correlation phi (its numerator ad - bc moved towards 0 by n/2 when positive, as the paper does). Checked, with
    the paper's a, b, c, d = both, b_only, a_only, neither, against its Table II (36, 12, 2, 0 -> 0.0569 to 0.3404)
    and Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8 (59, 6, 16, 80 ->
    -0.1186 to -0.0046). It keeps its coverage at small n and never shrinks to a point (n = 2, both for b: 0.07
    to 1), where a bootstrap gives [+1, +1].
    """
    if min(both, a_only, b_only, neither) < 0:
        raise ConfigError(f"Counts of paired examples cannot be negative, got {(both, a_only, b_only, neither)}.")
    n = both + a_only + b_only + neither
    if n == 0:
        raise ConfigError("A paired interval needs at least one example scored by both runs.",
                          "Evaluate both programs on the same test split first.")
    p1, p2 = (both + b_only) / n, (both + a_only) / n  # accuracy of b, of a
    l1, u1 = wilson_interval(both + b_only, n, confidence)
    l2, u2 = wilson_interval(both + a_only, n, confidence)
    margins = (both + b_only) * (a_only + neither) * (both + a_only) * (b_only + neither)
    phi = 0.0
    if margins:
        cross = both * neither - a_only * b_only
        phi = (cross - n / 2 if cross > n / 2 else min(cross, 0)) / math.sqrt(margins)
    diff = p1 - p2
    low = diff - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = diff + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, low), min(1.0, high)


def paired_sample_size(a_only: int, b_only: int, n: int, power: float = 0.8, alpha: float = 0.05) -> int | None:
    """Paired examples that would show a difference of the size seen (two-sided ``alpha``, given ``power``).

    Connor RJ (1987), Biometrics 43:207-211, from the discordant proportions psi = (a_only + b_only) / n and
    delta = (b_only - a_only) / n: n = (z_{alpha/2} sqrt(psi) + z_beta sqrt(psi - delta^2))^2 / delta^2, and
    never fewer than give MIN_DISCORDANT disagreements at the rate seen (fewer cannot reach p < 0.05 exactly).
    None when no difference was seen (delta = 0).
    """
    if n <= 0 or a_only < 0 or b_only < 0 or a_only + b_only > n:
        raise ConfigError(f"Need 0 <= a_only + b_only <= n, got a_only={a_only}, b_only={b_only}, n={n}.")
    if not (0 < power < 1 and 0 < alpha < 1):
        raise ConfigError(f"power and alpha must lie between 0 and 1 (exclusive), got {power!r} and {alpha!r}.",
                          "Use e.g. power 0.8 and alpha 0.05.")
    if a_only == b_only:
        return None
    psi, delta = (a_only + b_only) / n, (b_only - a_only) / n
    z_alpha, z_beta = _z(1 - alpha), NormalDist().inv_cdf(power)
    needed = (z_alpha * math.sqrt(psi) + z_beta * math.sqrt(psi - delta * delta)) ** 2 / (delta * delta)
    # 1e-9: a value like 303.0000000001 from rounding is 303, not 304.
    return max(math.ceil(needed - 1e-9), math.ceil(MIN_DISCORDANT / psi - 1e-9))


def compare_paired(a: Sequence[bool], b: Sequence[bool], name_a: str = "A", name_b: str = "B",
                   confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of right/wrong flags of two runs on the same examples, ``b`` against ``a``.

    Returns n, accuracy_a, accuracy_b, diff (b - a) with Newcombe's paired interval (ci_low, ci_high), a_only and
    b_only (examples only one run gets right), p_mcnemar (exact), p_value (the same, or None when fewer than
    MIN_DISCORDANT examples are discordant: then no outcome could reach p < 0.05), significant (p_value < 1 -
    confidence and the interval excludes 0), needed_n (``paired_sample_size``) and the sentence a page prints.
    """
    x, y = _paired(a, b)
    n = int(x.size)
    if n == 0:
        raise ConfigError("No examples to compare.", "Evaluate both programs on the same test split first.")
    test = mcnemar_exact(x, y)
    a_only, b_only = int(test["a_only"]), int(test["b_only"])
    both = int(np.sum(x.astype(bool) & y.astype(bool)))
    low, high = newcombe_paired_interval(both, a_only, b_only, n - both - a_only - b_only, confidence)
    p_value = test["p_value"] if a_only + b_only >= MIN_DISCORDANT else None
    out: dict[str, Any] = {
        "n": n, "accuracy_a": (both + a_only) / n, "accuracy_b": (both + b_only) / n, "diff": (b_only - a_only) / n,
        "ci_low": low, "ci_high": high, "a_only": a_only, "b_only": b_only, "p_mcnemar": test["p_value"],
        "p_value": p_value, "significant": p_value is not None and p_value < 1 - confidence and (low > 0 or high < 0),
        "needed_n": paired_sample_size(a_only, b_only, n),
    }
    out["sentence"] = paired_sentence(out, name_a, name_b, confidence)
    return out


def _points(value: float) -> str:
    """A difference in accuracy points with its sign: "+6.0", "−4.0" (a real minus sign), "0.0"."""
    text = f"{abs(value) * 100:.1f}"
    return text if text == "0.0" else ("+" if value > 0 else "\u2212") + text


def p_text(p: float) -> str:
    """A p-value as a sentence prints it: "p < 0.001", "p = 0.013", "p = 0.27"."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def needed_phrase(n: int, needed: int | None) -> str:
    """How many test examples a difference of the size seen needs, said one way on every screen and in the report:
    "about 303 test examples would tell them apart" (more than ``n``), or "these 50 are enough: about 17 would show a
    difference this size (80 % power)"; "" when no difference was seen."""
    if needed is None:
        return ""
    if needed > n:
        return f"about {needed:,} test examples would tell them apart"
    return f"these {n:,} are enough: about {needed:,} would show a difference this size (80 % power)"


def paired_sentence(c: Mapping[str, Any], name_a: str, name_b: str, confidence: float = 0.95) -> str:
    """The verdict of ``compare_paired``'s numbers in one plain sentence that starts with ``name_b``."""
    n, diff, a_only, b_only = int(c["n"]), float(c["diff"]), int(c["a_only"]), int(c["b_only"])
    ci = f"{confidence * 100:g} % CI {_points(c['ci_low'])} to {_points(c['ci_high'])} points"
    needed = c.get("needed_n")
    more = needed is not None and needed > n
    tail = f"; {needed_phrase(n, needed)}." if needed is not None else "."
    if a_only == b_only:
        p = "" if c.get("p_value") is None else f", exact McNemar {p_text(float(c['p_value']))}"
        return (f"{name_b} and {name_a} score the same on {n} test examples "
                f"({float(c['accuracy_a']) * 100:.1f} %; {ci}{p}): no difference seen.")
    if c.get("p_value") is None:
        return (f"{name_b} and {name_a} disagree on only {a_only + b_only} of {n} test examples ({b_only} vs "
                f"{a_only}): too few to test a difference, an exact test needs at least {MIN_DISCORDANT} ({ci})"
                + (tail if more else "."))
    return difference_sentence(c, (name_a, name_b), f"{abs(diff) * 100:.1f} points",
                               f"({ci}, exact McNemar {p_text(float(c['p_value']))})")


def difference_sentence(c: Mapping[str, Any], names: tuple[str, str], points: str, test: str) -> str:
    """The verdict on a difference a test could weigh (``c``: the paired comparison's numbers; ``names``: a's and
    b's; ``points``: its size in words; ``test``: the interval and p in brackets): better / worse when significant,
    else higher / lower with "cannot tell them apart", and the sample-size hint where it says more."""
    (name_a, name_b), n, diff, needed = names, int(c["n"]), float(c["diff"]), c.get("needed_n")
    tail = f"; {needed_phrase(n, needed)}." if needed is not None else "."
    if c.get("significant"):
        return (f"{name_b} is {points} {'better' if diff > 0 else 'worse'} than {name_a} {test} on {n} test "
                f"examples{tail}")
    return (f"{name_b} scores {points} {'higher' if diff > 0 else 'lower'} than {name_a} {test}: "
            f"{n} test examples cannot tell them apart" + (tail if needed is not None and needed > n else "."))


def paired_summary(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, Any]:
    """Paired comparison of two evaluations' records on the same examples (matched like ``aligned_records``).

    Returns n, accuracy_before, accuracy_after, diff (after - before) with Newcombe's paired interval, McNemar's
    exact test (after_only / before_only: examples only one of them gets right; p_mcnemar), p_value (None when
    too few examples are discordant to support one), needed_n and the verdict's sentence.
    """
    for name, frame in (("original", before), ("optimized", after)):
        require_records(frame, name)
    a, b = aligned_records(before, after)
    c = compare_paired(flags(a["correct"]), flags(b["correct"]), "the original program", "The optimized program")
    return {
        "n": float(c["n"]), "accuracy_before": c["accuracy_a"], "accuracy_after": c["accuracy_b"],
        "diff": c["diff"], "ci_low": c["ci_low"], "ci_high": c["ci_high"],
        "after_only": float(c["b_only"]), "before_only": float(c["a_only"]), "p_mcnemar": c["p_mcnemar"],
        "p_value": c["p_value"], "needed_n": c["needed_n"], "sentence": c["sentence"],
    }


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


def trade_off(reference_records: pd.DataFrame, optimized_records: pd.DataFrame) -> dict[str, Any]:
    """Accuracy of an optimized student against a reference run (the model it would replace), from their records.

    ``diff`` is optimized - reference accuracy. When both runs scored the same examples (see ``aligned_records``)
    the comparison is ``paired``: Newcombe's paired interval, McNemar's exact test (``p_value`` None when too few
    examples are discordant) and ``needed_n``. Otherwise the interval is Newcombe's for two independent samples and
    ``p_mcnemar`` is NaN. ``significant`` needs a paired p-value under 0.05 and an interval without 0; ``worse`` is
    a significant loss.
    """
    for name, frame in (("reference", reference_records), ("optimized", optimized_records)):
        require_records(frame, name)
    try:
        pair: tuple[pd.DataFrame, pd.DataFrame] | None = aligned_records(reference_records, optimized_records)
    except ConfigError:  # other examples: two independent samples
        pair = None
    if pair is not None:
        c = compare_paired(flags(pair[0]["correct"]), flags(pair[1]["correct"]))
        ref, opt = c["accuracy_a"], c["accuracy_b"]
        ci_low, ci_high, p, p_value, needed = c["ci_low"], c["ci_high"], c["p_mcnemar"], c["p_value"], c["needed_n"]
        n_ref = n_opt = c["n"]
        significant = bool(c["significant"])
    else:
        ref_flags, opt_flags = flags(reference_records["correct"]), flags(optimized_records["correct"])
        n_ref, n_opt = len(ref_flags), len(opt_flags)
        ref, opt = sum(ref_flags) / n_ref, sum(opt_flags) / n_opt
        ci_low, ci_high = newcombe_diff_interval(sum(ref_flags), n_ref, sum(opt_flags), n_opt)
        p, p_value, needed, significant = math.nan, None, None, False
    return {
        "diff": opt - ref, "ci_low": float(ci_low), "ci_high": float(ci_high), "p_mcnemar": float(p),
        "p_value": p_value, "needed_n": needed, "significant": significant,
        "n": n_opt, "n_reference": n_ref, "n_optimized": n_opt, "paired": pair is not None,
        "worse": significant and ci_high < 0, "accuracy_reference": ref, "accuracy_optimized": opt,
    }
