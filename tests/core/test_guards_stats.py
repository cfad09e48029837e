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
from core.errors import ConfigError


def paired_flags(n: int, b_only: int, a_only: int) -> tuple[list[bool], list[bool]]:
    """Two right/wrong columns over ``n`` examples: b alone right on ``b_only``, a alone on ``a_only``, both
    right on half of the rest (so the per-example differences are +1 ``b_only`` times, -1 ``a_only`` times)."""
    both = (n - b_only - a_only) // 2
    a = [False] * b_only + [True] * a_only + [True] * both
    b = [True] * b_only + [False] * a_only + [True] * both
    rest = n - len(a)
    return a + [False] * rest, b + [False] * rest


def normal_se(a: list[bool], b: list[bool]) -> tuple[float, float]:
    """(mean difference, its standard error) of b - a: what the bootstrap distribution tends to for large n."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    return float(d.mean()), float(d.std() / math.sqrt(d.size))


Z95 = NormalDist().inv_cdf(0.975)


def test_bootstrap_interval_is_95_percent_wide_by_default():
    """Bug guarded: the interval at 90 % (quantiles 5/95 instead of 2.5/97.5, or a 0.90 default).

    For n = 400 the bootstrap distribution of the mean difference is close to normal, so the 95 %
    percentile interval is diff +- 1.96 standard errors; a 90 % one is only 1.645/1.96 = 0.84 as wide."""
    a, b = paired_flags(400, b_only=60, a_only=30)
    diff, se = normal_se(a, b)
    out = stats.paired_bootstrap_diff(a, b, n_boot=20000, seed=3)
    assert out["diff"] == pytest.approx(diff)
    width = out["ci_high"] - out["ci_low"]
    assert width / (2 * Z95 * se) == pytest.approx(1.0, abs=0.05)
    assert out["ci_low"] == pytest.approx(diff - Z95 * se, abs=0.15 * se)
    assert out["ci_high"] == pytest.approx(diff + Z95 * se, abs=0.15 * se)
    # The confidence argument is honoured too: at 0.90 the interval shrinks to 1.645 standard errors.
    narrow = stats.paired_bootstrap_diff(a, b, n_boot=20000, seed=3, confidence=0.90)
    z90 = NormalDist().inv_cdf(0.95)
    assert (narrow["ci_high"] - narrow["ci_low"]) / (2 * z90 * se) == pytest.approx(1.0, abs=0.05)


def test_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    """Bug guarded: the same 90 % interval, seen as a coverage property on simulated data with a known
    difference (0.10): a 95 % interval covers it in about 95 % of 400 samples, a 90 % one in about 90 %."""
    rng = np.random.default_rng(2026)
    truth = 0.25 - 0.15
    covered = 0
    trials = 400
    for i in range(trials):
        d = rng.choice([-1, 0, 1], size=150, p=[0.15, 0.60, 0.25])
        a, b = d == -1, d == 1
        out = stats.paired_bootstrap_diff(a, b, n_boot=1000, seed=i)
        covered += out["ci_low"] <= truth <= out["ci_high"]
    # 95 % nominal: a percentile bootstrap at n = 150 covers 93-95 %; the binomial SD over 400 trials is 1.1 points.
    assert 0.925 <= covered / trials <= 0.975, covered / trials


def test_bootstrap_p_value_is_two_sided():
    """Bug guarded: a one-sided p (the share of bootstrap differences across zero, not doubled).

    With 40 examples only b gets right and 28 only a gets right out of 400, z = 1.46: the two-sided
    p is about 0.144 (one-sided: 0.072)."""
    a, b = paired_flags(400, b_only=40, a_only=28)
    diff, se = normal_se(a, b)
    expected = 2 * (1 - NormalDist().cdf(abs(diff) / se))
    out = stats.paired_bootstrap_diff(a, b, n_boot=20000, seed=5)
    assert out["p_value"] == pytest.approx(expected, abs=0.02)
    # The same evidence the other way round gives the same p (two-sided tests are symmetric).
    assert stats.paired_bootstrap_diff(b, a, n_boot=20000, seed=5)["p_value"] == pytest.approx(expected, abs=0.02)
    # And it agrees with McNemar's exact two-sided test on the same pairs (an independent test of the same question).
    assert out["p_value"] == pytest.approx(stats.mcnemar_exact(a, b)["p_value"], abs=0.03)


def test_p_value_and_interval_tell_the_same_story():
    """Bug guarded: a one-sided p next to a two-sided interval: p < 0.05 exactly when the 95 % interval excludes 0.

    The pairs are chosen so that zero lies between the 2.5 % and 5 % tails: one-sided p < 0.05 while the
    interval still contains zero."""
    a, b = paired_flags(400, b_only=44, a_only=26)  # z ~ 2.17 -> two-sided p ~ 0.03: significant
    clear = stats.paired_bootstrap_diff(a, b, n_boot=20000, seed=11)
    assert clear["ci_low"] > 0 and clear["p_value"] < 0.05
    a, b = paired_flags(400, b_only=42, a_only=27)  # z ~ 1.81 -> two-sided ~ 0.07, one-sided ~ 0.035
    borderline = stats.paired_bootstrap_diff(a, b, n_boot=20000, seed=11)
    assert borderline["ci_low"] < 0 < borderline["ci_high"]
    assert borderline["p_value"] > 0.05


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


def test_bootstrap_is_exactly_symmetric_with_ties_at_zero():
    """Found by mutmut: with few examples many bootstrap differences are exactly 0; swapping the two programs must
    mirror the interval and keep the p-value (ties count as 'the other side' in both directions)."""
    a, b = paired_flags(24, b_only=5, a_only=3)
    for seed in range(5):
        ab = stats.paired_bootstrap_diff(a, b, n_boot=500, seed=seed)
        ba = stats.paired_bootstrap_diff(b, a, n_boot=500, seed=seed)
        assert ba["diff"] == -ab["diff"]
        assert (ba["ci_low"], ba["ci_high"]) == pytest.approx((-ab["ci_high"], -ab["ci_low"]))
        assert ba["p_value"] == ab["p_value"]


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, 95])
def test_a_confidence_outside_0_1_is_refused_with_a_hint(confidence):
    """Found by mutmut: 1.0 or 1.5 slipped through to the normal quantile (a StatisticsError, not a message)."""
    for call in (lambda: stats.wilson_interval(3, 10, confidence=confidence),
                 lambda: stats.paired_bootstrap_diff([True], [False], confidence=confidence)):
        with pytest.raises(ConfigError, match="confidence") as err:
            call()
        assert err.value.hint


def test_bootstrap_edges():
    """Found by mutmut: n_boot = 1 is the smallest allowed; 2-D input is refused; empty input keeps its keys."""
    assert stats.paired_bootstrap_diff([True, False], [True, True], n_boot=1)["diff"] == 0.5
    with pytest.raises(ConfigError, match="n_boot"):
        stats.paired_bootstrap_diff([True], [False], n_boot=0)
    with pytest.raises(ConfigError, match="1-D") as err:
        stats.paired_bootstrap_diff([[True, False]], [[True, True]])
    assert err.value.hint
    empty = stats.paired_bootstrap_diff([], [])
    assert set(empty) == {"diff", "ci_low", "ci_high", "p_value"} and all(math.isnan(v) for v in empty.values())


def test_no_labels_gives_an_empty_table_and_zero_macro_f1():
    """Found by mutmut: the docstring's '0.0 when there are no labels' (not NaN), and the table keeps its columns."""
    assert stats.macro_f1(["a"], ["a"], ()) == 0.0
    assert list(stats.per_label_metrics(["a"], ["a"], ()).columns) == ["label", "precision", "recall", "f1", "support"]
