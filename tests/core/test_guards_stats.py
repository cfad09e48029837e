"""Guards on the statistics: each test fails under a plausible one-line bug (see the test's docstring).

The expected values come from outside the code under test: the normal approximation of a mean's
sampling distribution, scikit-learn's metrics, and coverage over simulated data with a known truth.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from core.analytics import stats
from core.config.errors import ConfigError


def paired_flags(n: int, b_only: int, a_only: int) -> tuple[list[bool], list[bool]]:
    """Two right/wrong columns over ``n`` examples: b alone right on ``b_only``, a alone on ``a_only``, both
    right on half of the rest (so the per-example differences are +1 ``b_only`` times, -1 ``a_only`` times)."""
    both = (n - b_only - a_only) // 2
    a = [False] * b_only + [True] * a_only + [True] * both
    b = [True] * b_only + [False] * a_only + [True] * both
    rest = n - len(a)
    return a + [False] * rest, b + [False] * rest


def normal_se(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """(mean difference, its standard error) of b - a: the normal approximation for large n."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return float(d.mean()), float(d.std() / math.sqrt(d.size))


Z95 = NormalDist().inv_cdf(0.975)


def newcombe(a: list[bool], b: list[bool], confidence: float = 0.95) -> tuple[float, float]:
    c = stats.compare_paired(a, b, confidence=confidence)
    return c["ci_low"], c["ci_high"]


def test_paired_interval_is_95_percent_wide_by_default():
    """Bug guarded: the interval at 90 % (a 0.90 default, or z of 1.645).

    For n = 400 the paired score interval is close to the normal one, diff +- 1.96 standard errors of the mean
    difference; a 90 % one is only 1.645/1.96 = 0.84 as wide."""
    a, b = paired_flags(400, b_only=60, a_only=30)
    diff, se = normal_se(a, b)
    low, high = newcombe(a, b)
    assert low < diff < high
    assert (high - low) / (2 * Z95 * se) == pytest.approx(1.0, abs=0.02)
    narrow_low, narrow_high = newcombe(a, b, confidence=0.90)
    z90 = NormalDist().inv_cdf(0.95)
    assert (narrow_high - narrow_low) / (2 * z90 * se) == pytest.approx(1.0, abs=0.02)


def test_p_value_is_two_sided_and_tells_the_same_story_as_the_interval():
    """Bug guarded: a one-sided p next to a two-sided interval.

    44 vs 26 discordant of 400: z ~ 2.15, two-sided exact p ~ 0.04 and the interval excludes 0; 42 vs 27: z ~ 1.81,
    two-sided p ~ 0.09 (one-sided ~ 0.045 would look significant) and the interval holds 0."""
    a, b = paired_flags(400, b_only=44, a_only=26)
    clear = stats.compare_paired(a, b)
    assert clear["ci_low"] > 0 and clear["p_value"] < 0.05 and clear["significant"]
    a, b = paired_flags(400, b_only=42, a_only=27)
    borderline = stats.compare_paired(a, b)
    assert borderline["ci_low"] < 0 < borderline["ci_high"]
    assert 0.05 < borderline["p_value"] < 0.15 and not borderline["significant"]
    assert stats.compare_paired(b, a)["p_value"] == borderline["p_value"]  # symmetric


LABELS = ("a", "b", "c", "d")


def test_macro_f1_counts_a_label_with_no_examples_as_zero():
    """Bug guarded: macro-F1 skipping labels with no examples.

    The docstrings say: macro-F1 is the unweighted mean of per-label F1 over ``labels`` and a zero division
    gives 0.0, which is scikit-learn's ``f1_score(average="macro", labels=..., zero_division=0)``: a label
    of the task that nobody predicted and no test example has scores 0 and still counts in the mean."""
    gold = ["a", "a", "b", "b", "b"]
    pred = ["a", "b", "b", "b", None]
    # a: p 1, r 1/2, f1 2/3; b: p 2/3, r 2/3, f1 2/3; c and d: no gold and no prediction -> 0.
    assert stats.macro_f1(gold, pred, LABELS) == pytest.approx((2 / 3 + 2 / 3 + 0 + 0) / 4)
    table = stats.per_label_metrics(gold, pred, LABELS).set_index("label")
    assert list(table.index) == list(LABELS)
    assert table.loc[["c", "d"], ["precision", "recall", "f1", "support"]].to_numpy().tolist() == [[0, 0, 0, 0]] * 2


def test_macro_f1_matches_scikit_learn_with_zero_division_0():
    """The same convention, checked against scikit-learn on random data where some labels never occur."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    labels = ("w", "x", "y", "z", "never")
    for _ in range(30):
        gold = list(rng.choice(["w", "x", "y"], size=25))
        pred = [p if p != "none" else None for p in rng.choice(["w", "x", "z", "none"], size=25)]
        ours = stats.macro_f1(gold, pred, labels)
        theirs = metrics.f1_score(gold, [p or "(unparsed)" for p in pred], labels=list(labels), average="macro",
                                  zero_division=0)
        assert ours == pytest.approx(theirs, abs=1e-12)
        per = stats.per_label_metrics(gold, pred, labels)
        f1s = metrics.f1_score(gold, [p or "(unparsed)" for p in pred], labels=list(labels), average=None,
                               zero_division=0)
        assert per["f1"].to_numpy() == pytest.approx(f1s, abs=1e-12)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, 95])
def test_a_confidence_outside_0_1_is_refused_with_a_hint(confidence):
    """Found by mutmut: 1.0 or 1.5 slipped through to the normal quantile (a StatisticsError, not a message)."""
    for call in (lambda: stats.wilson_interval(3, 10, confidence=confidence),
                 lambda: stats.newcombe_paired_interval(3, 1, 2, 4, confidence=confidence)):
        with pytest.raises(ConfigError, match="confidence") as err:
            call()
        assert err.value.hint


def test_no_labels_gives_an_empty_table_and_zero_macro_f1():
    """Found by mutmut: the docstring's '0.0 when there are no labels' (not NaN), and the table keeps its columns."""
    assert stats.macro_f1(["a"], ["a"], ()) == 0.0
    assert list(stats.per_label_metrics(["a"], ["a"], ()).columns) == ["label", "precision", "recall", "f1", "support"]
