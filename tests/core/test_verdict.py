"""The verdict on a pair of runs: Newcombe's paired interval, exact McNemar, the sample-size hint, the sentence.

Reference values come from outside the code: Newcombe (1998, Stat Med 17:2635) Table II, Fagerland, Lydersen &
Laake (2017, Statistical Analysis of Contingency Tables, ch. 8), Connor's (1987) formula worked by hand below,
and simulations with a known truth.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from core.analytics import stats
from core.analytics.verdict import Verdict, verdict
from core.config.errors import ConfigError


def records(n: int, right: set[int] | range, start: int = 0) -> pd.DataFrame:
    """Records of one evaluation over examples start..start+n-1; ``right`` lists the idx it got right."""
    idx = list(range(start, start + n))
    return pd.DataFrame({"idx": idx, "text": [f"sentence {i}" for i in idx], "gold": ["A"] * n,
                         "correct": [i in right for i in idx]})


# --- Newcombe's paired interval against published values ---


@pytest.mark.parametrize(("both", "b_only", "a_only", "neither", "expected"), [
    (36, 12, 2, 0, (0.0569, 0.3404)),  # Newcombe (1998) Table II, method 10 (his a, b, c, d)
    (59, 6, 16, 80, (-0.1186, -0.0046)),  # Fagerland et al. (2017) ch. 8, Cavo et al. 2012, square-and-add
])
def test_newcombe_paired_interval_matches_published_values(both, b_only, a_only, neither, expected):
    low, high = stats.newcombe_paired_interval(both, a_only, b_only, neither)
    assert (low, high) == pytest.approx(expected, abs=5e-5)


def test_newcombe_paired_interval_mirrors_when_the_runs_swap_and_widens_with_confidence():
    low, high = stats.newcombe_paired_interval(30, 4, 11, 15)
    assert stats.newcombe_paired_interval(30, 11, 4, 15) == pytest.approx((-high, -low))
    wide = stats.newcombe_paired_interval(30, 4, 11, 15, confidence=0.99)
    assert wide[0] < low < 7 / 60 < high < wide[1]
    with pytest.raises(ConfigError, match="confidence"):
        stats.newcombe_paired_interval(30, 4, 11, 15, confidence=95)
    with pytest.raises(ConfigError, match="negative"):
        stats.newcombe_paired_interval(30, -1, 11, 15)
    with pytest.raises(ConfigError, match="at least one example") as err:
        stats.newcombe_paired_interval(0, 0, 0, 0)
    assert err.value.hint


def test_the_issue_cases_no_p_from_a_bootstrap_and_no_point_interval():
    """4 vs 0 discordant out of 10: the exact McNemar p is 0.125 (the bootstrap said 0.013), and it is not shown;
    n = 2 with both for b: an interval, not [+1, +1]."""
    c = stats.compare_paired([False] * 4 + [True] * 6, [True] * 10)
    assert c["p_mcnemar"] == pytest.approx(0.125) and c["p_value"] is None and not c["significant"]
    assert c["diff"] == pytest.approx(0.4) and c["ci_low"] < 0.4 < c["ci_high"]
    two = stats.compare_paired([False, False], [True, True])
    assert two["diff"] == 1.0 and two["ci_high"] == 1.0 and two["ci_low"] < 0.1  # 0.07: far from +1
    assert two["p_value"] is None and not two["significant"]


def test_six_discordant_pairs_is_the_fewest_that_can_reach_p_below_005():
    """The small-n rule: the exact two-sided p of m discordant pairs, all one way, is 2 / 2**m: 0.0625 at 5,
    0.03125 at 6. Fewer than 6 can never reach 0.05, so no p-value is given for them."""
    five = stats.compare_paired([False] * 5 + [True] * 20, [True] * 25)
    six = stats.compare_paired([False] * 6 + [True] * 20, [True] * 26)
    assert five["p_mcnemar"] == pytest.approx(2 / 2**5) and five["p_value"] is None
    assert six["p_value"] == pytest.approx(2 / 2**6) and six["significant"]
    assert stats.MIN_DISCORDANT == 6


# --- the sample-size hint (Connor 1987) ---


def test_sample_size_hint_matches_a_hand_worked_case():
    """a_only = 4, b_only = 10 out of n = 100:
    psi = 14/100 = 0.14, delta = 6/100 = 0.06, delta^2 = 0.0036
    z_{0.025} = 1.959964, sqrt(psi) = 0.374166            -> 0.733351
    z_{0.20}  = 0.841621, sqrt(psi - delta^2) = sqrt(0.1364) = 0.369324 -> 0.310831
    (0.733351 + 0.310831)^2 = 1.044182^2 = 1.090316; / 0.0036 = 302.87 -> 303 examples."""
    assert stats.paired_sample_size(a_only=4, b_only=10, n=100) == 303
    assert stats.paired_sample_size(a_only=10, b_only=4, n=100) == 303  # the direction does not matter
    assert stats.paired_sample_size(5, 5, 100) is None  # no difference seen
    # Never fewer than give 6 discordant pairs at the rate seen: 5 of 5 all one way -> 6, not Connor's 4.
    assert stats.paired_sample_size(0, 5, 5) == 6
    with pytest.raises(ConfigError):
        stats.paired_sample_size(60, 50, 100)


def test_sample_size_hint_gives_about_80_percent_power_with_the_exact_test():
    """At the hinted 303 examples with the same discordant rates (4 % and 10 %), the exact McNemar test finds the
    difference in about 80 % of 2,000 simulated test sets (78 % here: the exact test is a little conservative)."""

    @lru_cache(maxsize=None)
    def significant(a_only: int, b_only: int) -> bool:
        return stats.compare_paired([True] * a_only + [False] * b_only, [False] * a_only + [True] * b_only)[
            "p_mcnemar"] < 0.05

    rng = np.random.default_rng(2026)
    tables = rng.multinomial(303, [0.50, 0.04, 0.10, 0.36], size=2000)
    power = np.mean([significant(int(t[1]), int(t[2])) for t in tables])
    assert 0.74 <= power <= 0.86, power


# --- coverage at small n ---


def test_paired_interval_covers_the_truth_at_small_n_where_a_bootstrap_does_not():
    """2,000 simulated test sets per setting (n, P(only a right), P(only b right), P(both right)), n from 10 to 50:
    the 95 % interval covers the true difference at least 93 % of the time. Over a wider grid (n 10-50, 256
    settings) Newcombe's interval covered 96.5 % on average, 91.8 % at worst; a percentile bootstrap 89.8 % on
    average and 38 % at worst. The last setting shows the bootstrap failing (79 %)."""
    settings = [(10, 0.05, 0.25, 0.5), (20, 0.05, 0.15, 0.6), (30, 0.1, 0.2, 0.5), (50, 0.02, 0.08, 0.7),
                (15, 0.0, 0.1, 0.8)]
    newcombe = lru_cache(maxsize=None)(stats.newcombe_paired_interval)

    @lru_cache(maxsize=None)
    def bootstrap(both: int, a_only: int, b_only: int, neither: int) -> tuple[float, float]:
        d = np.array([0.0] * (both + neither) + [-1.0] * a_only + [1.0] * b_only)
        means = d[np.random.default_rng(1).integers(0, d.size, size=(1000, d.size))].mean(axis=1)
        return tuple(np.quantile(means, [0.025, 0.975]))

    for n, p_a_only, p_b_only, p_both in settings:
        truth = p_b_only - p_a_only
        rng = np.random.default_rng(n)
        tables = [tuple(int(v) for v in t) for t in
                  rng.multinomial(n, [p_both, p_a_only, p_b_only, 1 - p_both - p_a_only - p_b_only], size=2000)]
        covered = np.mean([low - 1e-12 <= truth <= high + 1e-12 for low, high in (newcombe(*t) for t in tables)])
        assert covered >= 0.93, (n, p_a_only, p_b_only, covered)
    boot = np.mean([low - 1e-12 <= truth <= high + 1e-12 for low, high in (bootstrap(*t) for t in tables)])
    assert boot < 0.9, boot


# --- the verdict and its sentence ---


def test_verdict_that_cannot_tell_two_runs_apart_says_how_many_examples_would():
    a, b = records(50, range(20)), records(50, set(range(3, 20)) | set(range(40, 46)))  # 6 vs 3 discordant
    v = verdict(a, b, "stub-large · Predict", "Optimized stub-small · Predict")
    assert (v.n, v.a_only, v.b_only) == (50, 3, 6)
    assert v.diff == pytest.approx(0.06) and v.ci_low < 0 < v.ci_high
    assert v.p_value == pytest.approx(stats.mcnemar_exact([True] * 3 + [False] * 6,
                                                          [False] * 3 + [True] * 6)["p_value"])
    assert v.needed_n == stats.paired_sample_size(3, 6, 50) and v.needed_n > 50
    assert v.sentence == (
        "Optimized stub-small · Predict scores 6.0 points higher than stub-large · Predict "
        f"(95 % CI \u2212{-v.ci_low * 100:.1f} to +{v.ci_high * 100:.1f} points, exact McNemar p = {v.p_value:.2f}): "
        f"50 test examples cannot tell them apart; about {v.needed_n:,} test examples would tell them apart.")
    assert not v.significant


def test_a_significant_verdict_says_which_run_is_better_and_by_how_much():
    v = verdict(records(200, range(150)), records(200, range(130)), "GPT big", "GPT small")  # 20 vs 0 discordant
    assert v.significant and v.p_value < 0.001 and v.ci_high < 0
    assert v.sentence.startswith("GPT small is 10.0 points worse than GPT big (95 % CI \u2212")
    assert v.sentence.endswith(f"exact McNemar p < 0.001) on 200 test examples; these 200 are enough: about "
                               f"{v.needed_n:,} would show a difference this size (80 % power).")
    assert v.needed_n < 200  # the hint says how many would have sufficed
    better = verdict(records(200, range(130)), records(200, range(150)), "GPT big", "GPT small")
    assert better.sentence.startswith("GPT small is 10.0 points better than GPT big")


def test_a_small_test_set_gets_no_p_value_and_says_so():
    v = verdict(records(10, range(6)), records(10, range(10)), "original", "Optimized")
    assert v.p_value is None and v.needed_n == stats.paired_sample_size(0, 4, 10)
    assert "p =" not in v.sentence
    assert v.sentence.startswith("Optimized and original disagree on only 4 of 10 test examples (4 vs 0): too few to "
                                 "test a difference, an exact test needs at least 6 (95 % CI +")
    assert v.sentence.endswith(f"; about {v.needed_n} test examples would tell them apart.")
    same = verdict(records(10, range(6)), records(10, range(6)), "original", "Optimized")
    assert same.sentence.endswith("no difference seen.") and same.needed_n is None and same.diff == 0


def test_verdict_refuses_runs_on_different_examples_with_a_hint():
    with pytest.raises(ConfigError, match="same examples") as err:
        verdict(records(10, range(5)), records(10, range(5), start=100), "a", "b")
    assert "same test split" in err.value.hint
    other_gold = records(10, range(5)).assign(gold="B")
    with pytest.raises(ConfigError, match="differ"):
        verdict(records(10, range(5)), other_gold, "a", "b")
    with pytest.raises(ConfigError, match="records"):
        verdict(records(10, range(5)), pd.DataFrame(), "a", "b")
    with pytest.raises(ConfigError, match="name_b"):
        verdict(records(10, range(5)), records(10, range(5)), "a", " ")


def test_verdict_matches_examples_by_idx_and_checks_itself():
    a = records(30, range(20))
    b = records(30, set(range(8, 30))).sample(frac=1, random_state=3)  # shuffled rows: matched by idx
    v = verdict(a, b, "a", "b")
    assert (v.a_only, v.b_only) == (8, 10) and v.to_dict()["sentence"] == v.sentence
    with pytest.raises(ConfigError):
        Verdict(n=10, accuracy_a=0.5, accuracy_b=0.6, diff=0.1, ci_low=0.2, ci_high=0.3, a_only=0, b_only=1,
                p_value=None, needed_n=None, sentence="x")  # the interval misses diff
    with pytest.raises(ConfigError):
        Verdict(n=10, accuracy_a=0.5, accuracy_b=0.6, diff=0.1, ci_low=0.0, ci_high=0.3, a_only=6, b_only=7,
                p_value=None, needed_n=None, sentence="x")  # more discordant than examples


def test_paired_summary_keeps_its_keys_without_the_bootstrap():
    s = stats.paired_summary(records(10, range(6)), records(10, range(10)))
    assert "p_bootstrap" not in s
    assert {"n", "accuracy_before", "accuracy_after", "diff", "ci_low", "ci_high", "after_only", "before_only",
            "p_mcnemar", "p_value", "needed_n", "sentence"} <= set(s)
    assert s["p_mcnemar"] == pytest.approx(0.125) and s["p_value"] is None
    assert s["sentence"].startswith("The optimized program and the original program disagree on only 4 of 10")
    assert not math.isnan(s["ci_low"]) and s["ci_low"] < s["diff"] < s["ci_high"]
