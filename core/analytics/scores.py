"""Statistics for per-example scores in [0, 1] (token F1, numeric tolerance, an LLM judge), not only right/wrong.

On scores that are all 0 or 1 each function gives its counterpart in ``core.analytics.stats`` (Wilson's interval;
``compare_paired``: Newcombe's paired interval and exact McNemar), so a page can call these for any task. The
methods were picked by simulating coverage and false-positive rates at n = 10, 30 and 100 over token-F1-like,
uniform, beta, judge-like and near-constant scores, against the t interval, percentile and BCa bootstraps, the
paired bootstrap, Wilcoxon's signed-rank and the t test (``bench/score_stats.py`` re-measures the chosen ones):

* the mean's interval is a quasi-binomial Wilson interval (``mean_interval``); the t interval and both bootstraps
  fall to 82-84 % coverage at n = 10 on judge-like scores (mostly one value, a few far ones);
* a paired comparison uses a sign-flip permutation test of the mean difference (exact up to 13 differing
  examples, else 10,000 seeded Monte Carlo flips): exact under the null, so its false-positive rate is 5 % or
  less at every n (up to simulation error), where the paired bootstrap rejects up to 12 % at n = 10; it is
  McNemar's exact test on 0/1 scores;
* the interval of the mean difference squares and adds the two means' intervals with their correlation (the
  MOVER of Newcombe's method 10, which is this on 0/1 scores); the t interval on the differences covers only
  67-75 % when few examples differ.

Pure functions over plain sequences; numpy only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np

from core.analytics.stats import (
    MIN_DISCORDANT,
    _points,
    compare_paired,
    difference_sentence,
    needed_phrase,
    p_text,
    wilson_interval,
)
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

PSEUDO_WEIGHT = 0.5  # one extra example that scored 0 or 1 by a fair coin: half an example at each bound
PERMUTATIONS = 10_000  # Monte Carlo sign flips past 13 differing examples: p's standard error ~0.002 at 0.05
SEED = 20_240_607  # fixed: the same scores always give the same p-value
TOLERANCE = 1e-9  # two scores closer than this are the same score (floating-point noise, not a difference)
TEST_NAME = "paired permutation test"
_CHUNK = 128  # bytes of sign flips (8 examples each) drawn at a time: memory stays ~10 MB at any n
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(float)  # (256, 8)
_BYTE_BITS.flags.writeable = False


def is_binary(scores: Sequence[Any]) -> bool:
    """True when every value is 0 or 1 (booleans count); NaN or None is neither. Empty: True (nothing else)."""
    x = np.asarray([math.nan if v is None else v for v in scores], dtype=float)
    return bool(np.all((x == 0.0) | (x == 1.0)))


def _scores(values: Sequence[Any], name: str = "scores") -> np.ndarray:
    try:
        x = np.asarray([math.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be numbers in [0, 1], got {err}.",
                          "Pass one numeric score per example.") from err
    if x.ndim != 1:
        raise ConfigError(f"{name} must be a flat sequence of scores, got shape {x.shape}.")
    if np.isnan(x).any():
        raise ConfigError(f"{name} has {int(np.isnan(x).sum())} missing score(s) (NaN or None).",
                          "Score a failed example 0, or drop it from both runs, before computing statistics.")
    if ((x < 0.0) | (x > 1.0)).any():
        bad = x[(x < 0.0) | (x > 1.0)][0]
        raise ConfigError(f"{name} must lie in [0, 1], got {bad!r}.",
                          "Rescale the metric to 0..1 (e.g. a 1-5 judge score s as (s - 1) / 4).")
    return x


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}.", "Use e.g. 0.95.")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def mean_interval(scores: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Interval (low, high) in 0..1 of the mean score; Wilson's interval exactly when the scores are all 0/1.

    Wilson's score interval for a proportion with the variance of a quasi-binomial mean, phi * mu * (1 - mu) / n
    (McCullagh & Nelder 1989, ch. 9): phi is the scores' spread as a share of the most a 0..1 variable with their
    mean can spread (a 0/1 one), plus one pseudo-example that scored 0 or 1 by a fair coin, capped at 1. So 0/1
    scores give phi = 1 and Wilson; all-equal scores c get a non-degenerate interval whose width shrinks like 1/n
    (as Wilson's for all 0 or all 1: n = 10, c = 0.9 gives 0.72 to 0.97), because a score never seen may still be
    out there; and Wilson's pull towards 1/2 keeps rare far scores from being ruled out. Simulated coverage
    (bench/score_stats.py) is 94-100 % at n = 10, 30 and 100; the t interval falls to 82 % on judge-like scores.
    Empty scores give (0.0, 1.0), as Wilson does for n = 0.
    """
    x = _scores(scores)
    z = _z(confidence)
    n = int(x.size)
    if n == 0 or is_binary(x):
        return wilson_interval(int(x.sum()), n, confidence)
    m = float(x.mean())  # strictly inside (0, 1): some score is, and none is outside [0, 1]
    spread = float(np.sum((x - m) ** 2)) + PSEUDO_WEIGHT * (m * m + (1 - m) ** 2)
    phi = min(1.0, spread / (n * m * (1 - m)))
    effective = n / phi
    z2 = z * z
    denom = 1 + z2 / effective
    center = (m + z2 / (2 * effective)) / denom
    half = z / denom * math.sqrt(m * (1 - m) / effective + z2 / (4 * effective * effective))
    return max(0.0, min(m, center - half)), min(1.0, max(m, center + half))


def paired_difference_interval(a: Sequence[float], b: Sequence[float],
                               confidence: float = 0.95) -> tuple[float, float]:
    """Interval (low, high) in -1..1 of mean(b) - mean(a) over the same examples.

    Newcombe's method 10 for any scores (Zou & Donner 2008's MOVER): the two means' ``mean_interval`` limits,
    squared and added with the Pearson correlation of a and b. On 0/1 scores this is Newcombe's paired interval
    whenever the runs are not positively associated (Newcombe also moves a positive phi towards 0 by n/2).
    Simulated coverage 92-100 % with a true difference of 0 or 0.1; the t interval on the differences covers
    only 67-75 % when few examples differ.
    """
    x, y = _pair(a, b)
    if x.size == 0:
        raise ConfigError("A paired interval needs at least one example scored by both runs.",
                          "Evaluate both programs on the same test split first.")
    ma, mb = float(x.mean()), float(y.mean())
    la, ua = mean_interval(x, confidence)
    lb, ub = mean_interval(y, confidence)
    r = float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else 0.0
    r = max(-1.0, min(1.0, r))
    diff = mb - ma
    low = diff - math.sqrt(max(0.0, (mb - lb) ** 2 - 2 * r * (mb - lb) * (ua - ma) + (ua - ma) ** 2))
    high = diff + math.sqrt(max(0.0, (ub - mb) ** 2 - 2 * r * (ub - mb) * (ma - la) + (ma - la) ** 2))
    return max(-1.0, low), min(1.0, high)


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _scores(a, "a's scores"), _scores(b, "b's scores")
    if x.shape != y.shape:
        raise ConfigError(f"A paired comparison needs one score per example from each run, got {x.size} and "
                          f"{y.size} scores.", "Score both programs on the same examples, in the same order.")
    return x, y


def permutation_p(diffs: Sequence[float]) -> float:
    """Two-sided p of a sign-flip permutation test that the paired differences' mean is 0.

    Under the null the two runs' scores on an example are exchangeable, so each difference's sign is a coin flip:
    p is the share of the 2^k sign patterns of the k nonzero differences whose sum is at least as far from 0 as
    the one seen; all of them up to k = 13, else PERMUTATIONS seeded draws with the observed pattern counted in,
    (1 + hits) / (1 + draws), which keeps the test valid. For differences of +-1 this is McNemar's exact test.
    """
    d = np.asarray(diffs, dtype=float)
    if not np.isfinite(d).all():
        raise ConfigError("Paired differences must be finite numbers.", "Drop examples a run did not score.")
    size = np.abs(d[np.abs(d) > TOLERANCE])
    k = int(size.size)
    if k == 0:
        return 1.0
    total = float(size.sum())
    # The sum with a set of signs flipped is total - 2 * flipped; a pattern at least as extreme as the observed one
    # has |total - 2 * flipped| >= |observed| (with room for rounding: 0.1 + 0.2 is not 0.3 in floating point).
    observed = abs(float(np.sum(np.where(np.abs(d) > TOLERANCE, d, 0.0)))) - TOLERANCE * max(1.0, total)
    if 2**k <= PERMUTATIONS:
        flips = (np.arange(2**k)[:, None] >> np.arange(k)) & 1
        return float(np.mean(np.abs(total - 2 * (flips @ size)) >= observed))
    # Monte Carlo: each random byte flips 8 differences; a 256-entry table per byte gives the size it flips.
    nbytes = -(-k // 8)
    padded = np.zeros(nbytes * 8)
    padded[:k] = size
    tables = _BYTE_BITS @ padded.reshape(nbytes, 8).T  # (256, nbytes)
    rng = np.random.default_rng(SEED)
    flipped = np.zeros(PERMUTATIONS)
    for start in range(0, nbytes, _CHUNK):
        cols = np.arange(start, min(nbytes, start + _CHUNK))
        draws = rng.integers(0, 256, (PERMUTATIONS, cols.size), dtype=np.uint8)
        flipped += tables[draws, cols].sum(axis=1)
    hits = int(np.sum(np.abs(total - 2 * flipped) >= observed))
    return (1 + hits) / (1 + PERMUTATIONS)


def score_sample_size(diffs: Sequence[float], power: float = 0.8, alpha: float = 0.05) -> int | None:
    """Paired examples that would show a mean difference of the size seen (two-sided ``alpha``, given ``power``).

    Connor's (1987) formula with the differences' moments: n = (z_{alpha/2} sqrt(E d^2) + z_beta sqrt(E d^2 -
    delta^2))^2 / delta^2, delta the mean difference (E d^2 is its variance under the null, E d^2 - delta^2 under
    the alternative); never fewer than give MIN_DISCORDANT differing examples at the rate seen. On differences of
    +-1 and 0 it is ``stats.paired_sample_size``. None when the mean difference is 0.
    """
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        raise ConfigError("No paired differences to size a test from.")
    if not (0 < power < 1 and 0 < alpha < 1):
        raise ConfigError(f"power and alpha must lie between 0 and 1 (exclusive), got {power!r} and {alpha!r}.",
                          "Use e.g. power 0.8 and alpha 0.05.")
    d = np.where(np.abs(d) > TOLERANCE, d, 0.0)
    delta = float(d.mean())
    if abs(delta) <= TOLERANCE:
        return None
    second = float(np.mean(d * d))
    share = np.count_nonzero(d) / d.size
    z_alpha, z_beta = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
    needed = (z_alpha * math.sqrt(second) + z_beta * math.sqrt(max(0.0, second - delta * delta))) ** 2 / delta**2
    # 1e-9: a value like 303.0000000001 from rounding is 303, not 304.
    return max(math.ceil(needed - 1e-9), math.ceil(MIN_DISCORDANT / share - 1e-9))


def compare_scores(a: Sequence[float], b: Sequence[float], name_a: str = "A", name_b: str = "B",
                   metric: str = "score", confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of two runs' scores in [0, 1] on the same examples, ``b`` against ``a``.

    The keys of ``stats.compare_paired`` (n, accuracy_a and accuracy_b: the mean scores, diff: b - a, ci_low and
    ci_high: ``paired_difference_interval``, a_only and b_only: examples where a / b scored higher, p_mcnemar: the
    test's p, p_value: the same or None when fewer than MIN_DISCORDANT examples differ, significant, needed_n:
    ``score_sample_size``, sentence) plus "test", the test's name. All 0/1 scores give exactly
    ``stats.compare_paired`` with test "exact McNemar"; others the ``permutation_p`` test.
    """
    if not isinstance(metric, str) or not metric.strip():
        raise ConfigError(f"metric must name the score in the sentence, got {metric!r}.", "E.g. 'token F1'.")
    x, y = _pair(a, b)
    n = int(x.size)
    if n == 0:
        raise ConfigError("No examples to compare.", "Evaluate both programs on the same test split first.")
    if is_binary(x) and is_binary(y):
        return {**compare_paired(x.astype(bool), y.astype(bool), name_a, name_b, confidence), "test": "exact McNemar"}
    d = y - x
    a_only, b_only = int(np.sum(d < -TOLERANCE)), int(np.sum(d > TOLERANCE))
    low, high = paired_difference_interval(x, y, confidence)
    p = permutation_p(d)
    p_value = p if a_only + b_only >= MIN_DISCORDANT else None
    out: dict[str, Any] = {
        "n": n, "accuracy_a": float(x.mean()), "accuracy_b": float(y.mean()), "diff": float(y.mean() - x.mean()),
        "ci_low": low, "ci_high": high, "a_only": a_only, "b_only": b_only, "p_mcnemar": p, "p_value": p_value,
        "significant": p_value is not None and p_value < 1 - confidence and (low > 0 or high < 0),
        "needed_n": score_sample_size(d), "test": TEST_NAME,
    }
    out["sentence"] = score_sentence(out, name_a, name_b, metric.strip(), confidence)
    return out


def score_sentence(c: Mapping[str, Any], name_a: str, name_b: str, metric: str = "score",
                   confidence: float = 0.95) -> str:
    """The verdict of ``compare_scores``' numbers in one plain sentence that starts with ``name_b`` and names the
    metric: no difference, too few differing examples to test, a significant difference, or one n cannot settle."""
    n, diff, a_only, b_only = int(c["n"]), float(c["diff"]), int(c["a_only"]), int(c["b_only"])
    ci = f"{confidence * 100:g} % CI {_points(c['ci_low'])} to {_points(c['ci_high'])} points"
    test = str(c.get("test", TEST_NAME))
    needed = c.get("needed_n")
    more = needed is not None and needed > n
    tail = f"; {needed_phrase(n, needed)}." if needed is not None else "."
    if needed is None:
        p = "" if c.get("p_value") is None else f", {test} {p_text(float(c['p_value']))}"
        return (f"{name_b} and {name_a} score the same on average on {n} test examples "
                f"(mean {metric} {float(c['accuracy_a']) * 100:.1f} %; {ci}{p}): no difference seen.")
    if c.get("p_value") is None:
        return (f"{name_b} and {name_a} score differently on only {a_only + b_only} of {n} test examples ({b_only} "
                f"higher vs {a_only} lower): too few to test a difference, a paired test needs at least "
                f"{MIN_DISCORDANT} ({ci})" + (tail if more else "."))
    return difference_sentence(c, (name_a, name_b), f"{abs(diff) * 100:.1f} points of {metric}",
                               f"({ci}, {test} {p_text(float(c['p_value']))})")


def score_summary(scores: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """n, mean with its ``mean_interval`` (ci_low, ci_high), median, share_perfect (score 1) and share_zero.

    No scores give n = 0, NaN for the rest and the interval (0.0, 1.0), as Wilson does for n = 0.
    """
    x = _scores(scores)
    low, high = mean_interval(x, confidence)
    if x.size == 0:
        return {"n": 0, "mean": math.nan, "ci_low": low, "ci_high": high, "median": math.nan,
                "share_perfect": math.nan, "share_zero": math.nan}
    return {"n": int(x.size), "mean": float(x.mean()), "ci_low": low, "ci_high": high,
            "median": float(np.median(x)), "share_perfect": float(np.mean(x == 1.0)),
            "share_zero": float(np.mean(x == 0.0))}
