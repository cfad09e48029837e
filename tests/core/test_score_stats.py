"""core.analytics.scores: intervals and paired tests for scores in [0, 1], against hand-worked cases, the 0/1 methods
of core.analytics.stats (Wilson, Newcombe, exact McNemar, Connor), properties and a small seeded simulation.

The hand-worked numbers use z = 1.959964 (z^2 = 3.841459); bench/score_stats.py holds the full simulation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.analytics import scores, stats
from core.analytics.verdict import Verdict
from core.config.errors import ConfigError

FAST = settings(max_examples=80, deadline=None)
GRADES = [0.0, 0.25, 0.5, 0.75, 1.0]  # a judge's 1-5 scale: ties, as real scores have
SCORE = st.one_of(st.floats(0.0, 1.0, allow_nan=False), st.sampled_from(GRADES))


@pytest.fixture(autouse=True)
def fresh_dspy_cache():
    """Overrides conftest's per-test DSPy cache (about a second a test on a busy machine): nothing here calls an LM."""
    yield


def paired_lists(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[tuple[list[float], list[float]]]:
    return st.integers(min_size, max_size).flatmap(
        lambda n: st.tuples(st.lists(SCORE, min_size=n, max_size=n), st.lists(SCORE, min_size=n, max_size=n)))


# --- mean_interval ---


def test_mean_interval_hand_worked_all_equal_scores():
    """Four scores of 0.5: spread = 0.5 * (0.5^2 + 0.5^2) = 0.25 (the pseudo-example alone), phi = 0.25 / (4 * 0.25)
    = 0.25, so Wilson with p = 0.5 and n = 4 / 0.25 = 16: centre 0.5, half = z / (1 + z^2/16) * sqrt(0.25/16 +
    z^2/1024) = 1.580501 * 0.139197 = 0.2200 -> 0.2800 to 0.7200.
    Ten scores of 0.9: spread = 0.5 * (0.81 + 0.01) = 0.41, phi = 0.41 / (10 * 0.09) = 0.455556, n' = 21.951:
    centre (0.9 + z^2 / 43.902) / 1.175000 = 0.840425, half = 1.668054 * sqrt(0.0041 + 0.001993) = 0.130185
    -> 0.7102 to 0.9706 (all ten 0/1 scores at 1 give Wilson's 0.7225 to 1)."""
    assert scores.mean_interval([0.5] * 4) == pytest.approx((0.2800, 0.7200), abs=5e-5)
    assert scores.mean_interval([0.9] * 10) == pytest.approx((0.7102, 0.9706), abs=5e-5)


def test_mean_interval_hand_worked_mixed_scores_cap_phi_at_one():
    """0, 0.5, 1, 1: mean 0.625, squares about it 0.390625 + 0.015625 + 2 * 0.140625 = 0.6875, plus the
    pseudo-example 0.5 * (0.390625 + 0.140625) = 0.265625: 0.953125 > n * m * (1 - m) = 0.9375, so phi = 1 (no 0..1
    score spreads more than a 0/1 one) and the interval is Wilson's with p = 0.625, n = 4: centre 0.563782, half
    0.344341 -> 0.2194 to 0.9081."""
    assert scores.mean_interval([0, 0.5, 1, 1]) == pytest.approx((0.2194, 0.9081), abs=5e-5)


@pytest.mark.parametrize("flags", [[1, 0, 1, 1], [0] * 7, [1] * 12, [True, False, False], [1.0, 0.0] * 20])
def test_mean_interval_of_0_1_scores_is_wilson_exactly(flags):
    assert scores.is_binary(flags)
    assert scores.mean_interval(flags) == stats.wilson_interval(int(sum(flags)), len(flags))
    assert scores.mean_interval(flags, 0.9) == stats.wilson_interval(int(sum(flags)), len(flags), 0.9)


@FAST
@given(st.lists(SCORE, min_size=1, max_size=60))
def test_mean_interval_holds_the_mean_within_0_1(values):
    low, high = scores.mean_interval(values)
    mean = float(np.mean(values))
    assert 0.0 <= low <= mean + 1e-12 and mean - 1e-12 <= high <= 1.0
    assert high > low  # never a point, not even for all-equal scores
    assert scores.mean_interval(values) == (low, high)  # deterministic


def test_mean_interval_edges():
    assert scores.mean_interval([]) == (0.0, 1.0)  # as Wilson for n = 0
    low, high = scores.mean_interval([0.7])
    assert low < 0.3 and high > 0.95  # one example says little
    narrow, wide = scores.mean_interval([0.6, 0.7] * 50), scores.mean_interval([0.6, 0.7] * 50, confidence=0.99)
    assert wide[0] < narrow[0] < 0.65 < narrow[1] < wide[1]
    assert scores.is_binary([]) and not scores.is_binary([0, 1, 0.5]) and not scores.is_binary([math.nan])


@pytest.mark.parametrize(("values", "match"), [
    ([0.5, math.nan], "missing"), ([0.5, None], "missing"), ([0.5, 1.5], r"\[0, 1\]"), ([-0.1], r"\[0, 1\]"),
    (["high"], "numbers"), ([[0.1, 0.2]], "flat"),
])
def test_bad_scores_are_refused_with_a_hint(values, match):
    with pytest.raises(ConfigError, match=match) as err:
        scores.mean_interval(values)
    assert err.value.hint or match == "flat"


def test_bad_confidence_is_refused():
    with pytest.raises(ConfigError, match="confidence"):
        scores.mean_interval([0.2, 0.4], confidence=95)


# --- the permutation test ---


def test_permutation_p_hand_worked():
    """Six differences all positive: only the all-plus and all-minus of the 2^6 sign patterns reach |sum| = 1.8, so
    p = 2/64. With 0.4, 0.4, 0.1, 0.4, 0.2, -0.3 the sum is 1.2; a pattern whose flipped sizes add to S has sum
    1.8 - 2S, at least 1.2 away from 0 when S <= 0.3 ({}, {0.1}, {0.2}, {0.3}, {0.1, 0.2}) or S >= 1.5 (their
    complements): 10 of 64. Zero differences change nothing."""
    assert scores.permutation_p([0.4, 0.4, 0.1, 0.4, 0.2, 0.3]) == pytest.approx(2 / 64)
    assert scores.permutation_p([0.4, 0.4, 0.1, 0.4, 0.2, -0.3]) == pytest.approx(10 / 64)
    assert scores.permutation_p([0.4, 0.4, 0.1, 0.4, 0.2, -0.3, 0, 0, 0]) == pytest.approx(10 / 64)
    assert scores.permutation_p([0.0, 0.0]) == 1.0 and scores.permutation_p([]) == 1.0
    with pytest.raises(ConfigError, match="finite"):
        scores.permutation_p([0.1, math.nan])


def test_permutation_p_is_mcnemar_on_plus_minus_one():
    """Exactly up to 13 differing examples; past that within the Monte Carlo error (SE < 0.002 here)."""
    for b_only, a_only, tolerance in [(5, 1, 0), (9, 3, 0), (10, 2, 0), (4, 4, 0), (12, 2, 0.005), (30, 14, 0.01)]:
        diffs = [1.0] * b_only + [-1.0] * a_only
        mcnemar = stats.mcnemar_exact([False] * b_only + [True] * a_only, [True] * b_only + [False] * a_only)
        assert scores.permutation_p(diffs) == pytest.approx(mcnemar["p_value"], abs=tolerance or 1e-12)


def test_monte_carlo_p_agrees_with_all_sign_patterns_and_is_deterministic():
    """16 differing examples (65,536 patterns, past the exact limit): the seeded Monte Carlo p lies within 0.01 of
    the exact one (its standard error is under 0.005) and is the same on every call."""
    d = np.random.default_rng(7).random(16) - 0.45
    patterns = np.array(list(itertools.product([-1.0, 1.0], repeat=16)))
    exact = float(np.mean(np.abs(patterns @ np.abs(d)) >= abs(d.sum()) - 1e-12))
    p = scores.permutation_p(d)
    assert p == pytest.approx(exact, abs=0.01) and scores.permutation_p(d) == p
    assert scores.permutation_p([0.3] * 40) == pytest.approx(1 / (1 + scores.PERMUTATIONS), abs=2e-4)  # the floor


# --- the sample-size hint ---


def test_score_sample_size_hand_worked_and_connor_on_0_1():
    """Five differences of 0.2 and five of 0: delta = 0.1, E d^2 = 0.02, variance 0.01:
    (1.959964 * 0.141421 + 0.841621 * 0.1)^2 / 0.01 = (0.277181 + 0.084162)^2 / 0.01 = 13.06 -> 14 examples (more
    than the 6 / 0.5 = 12 that would give 6 differing ones). On +-1 / 0 differences it is Connor's formula."""
    assert scores.score_sample_size([0.2] * 5 + [0.0] * 5) == 14
    assert scores.score_sample_size([0.2, -0.2, 0.0]) is None
    diffs = [1.0] * 10 + [-1.0] * 4 + [0.0] * 86
    assert scores.score_sample_size(diffs) == stats.paired_sample_size(a_only=4, b_only=10, n=100) == 303
    with pytest.raises(ConfigError):
        scores.score_sample_size([])


# --- compare_scores ---

A6 = [0.2, 0.5, 0.9, 0.4, 0.7, 0.3]
B6 = [0.6, 0.9, 1.0, 0.8, 0.9, 0.6]


def test_compare_scores_hand_worked_case():
    """b beats a on all 6 examples by 0.4, 0.4, 0.1, 0.4, 0.2, 0.3: diff 0.3, p = 2/64 = 0.031, significant; the
    interval (Newcombe's square-and-add of the two means' intervals with their correlation) holds 0.3 and excludes
    0; needed_n = max(Connor 5.3 -> 6, 6 / 1) = 6."""
    c = scores.compare_scores(A6, B6, "the original program", "The optimized program", metric="token F1")
    assert (c["n"], c["a_only"], c["b_only"]) == (6, 0, 6)
    assert (c["accuracy_a"], c["accuracy_b"], c["diff"]) == pytest.approx((0.5, 0.8, 0.3))
    assert c["p_value"] == c["p_mcnemar"] == pytest.approx(2 / 64) and c["significant"]
    assert 0.0 < c["ci_low"] < 0.3 < c["ci_high"] < 0.6 and c["needed_n"] == 6
    assert c["test"] == "paired permutation test"
    assert c["sentence"].startswith(
        "The optimized program is 30.0 points of token F1 better than the original program (95 % CI +")
    assert "paired permutation test p = 0.031) on 6 test examples; these 6 are enough" in c["sentence"]
    assert set(c) == set(stats.compare_paired([True], [False])) | {"test"}


@pytest.mark.parametrize(("a", "b"), [
    ([True] * 5 + [False] * 20, [False] * 5 + [True] * 20),
    ([1, 0, 1, 1, 0, 0, 1, 1, 1, 0] * 3, [1, 1, 1, 0, 1, 0, 1, 1, 1, 1] * 3),
    ([1.0] * 8, [1.0] * 8), ([0, 1], [1, 1]),
])
def test_compare_scores_of_0_1_scores_is_compare_paired_exactly(a, b):
    c = scores.compare_scores(a, b, "the original", "The optimized program", metric="token F1")
    assert c == {**stats.compare_paired(a, b, "the original", "The optimized program"), "test": "exact McNemar"}


@FAST
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(st.lists(st.booleans(), min_size=n, max_size=n),
                                                      st.lists(st.booleans(), min_size=n, max_size=n))))
def test_compare_scores_matches_compare_paired_on_any_0_1_runs(pair):
    a, b = pair
    assert scores.compare_scores(a, b) == {**stats.compare_paired(a, b), "test": "exact McNemar"}


def test_difference_interval_is_newcombe_on_0_1_runs_not_positively_associated():
    """Newcombe moves a positive phi towards 0; with ad - bc <= 0 his interval is this square-and-add exactly."""
    both, a_only, b_only, neither = 3, 6, 12, 2  # ad - bc = 6 - 72 < 0
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    assert scores.paired_difference_interval(a, b) == pytest.approx(
        stats.newcombe_paired_interval(both, a_only, b_only, neither), abs=1e-12)


@FAST
@given(paired_lists())
def test_compare_scores_properties(pair):
    a, b = pair
    c = scores.compare_scores(a, b)
    assert 0.0 <= c["p_mcnemar"] <= 1.0 and (c["p_value"] is None or c["p_value"] == c["p_mcnemar"])
    assert -1.0 <= c["ci_low"] <= c["diff"] + 1e-12 and c["diff"] - 1e-12 <= c["ci_high"] <= 1.0
    swapped = scores.compare_scores(b, a)
    assert swapped["diff"] == pytest.approx(-c["diff"], abs=1e-12)
    assert (swapped["a_only"], swapped["b_only"]) == (c["b_only"], c["a_only"])
    assert swapped["p_mcnemar"] == pytest.approx(c["p_mcnemar"])
    assert (swapped["ci_low"], swapped["ci_high"]) == pytest.approx((-c["ci_high"], -c["ci_low"]), abs=1e-12)
    assert scores.compare_scores(a, b) == c  # deterministic
    # The Verdict the pages show accepts these numbers as they are.
    Verdict(n=c["n"], accuracy_a=c["accuracy_a"], accuracy_b=c["accuracy_b"], diff=c["diff"], ci_low=c["ci_low"],
            ci_high=c["ci_high"], a_only=c["a_only"], b_only=c["b_only"], p_value=c["p_value"],
            needed_n=c["needed_n"], sentence=c["sentence"])


def test_sentences_for_each_case_name_the_metric():
    same = scores.compare_scores([0.2, 0.6, 0.5], [0.4, 0.4, 0.5], "run A", "Run B", metric="judge score")
    assert same["needed_n"] is None and same["sentence"].startswith(
        "Run B and run A score the same on average on 3 test examples (mean judge score 43.3 %; 95 % CI")
    few = scores.compare_scores([0.5] * 20, [0.5] * 17 + [0.9, 0.8, 0.2], "run A", "Run B", metric="token F1")
    assert few["p_value"] is None and (few["b_only"], few["a_only"]) == (2, 1)
    assert "score differently on only 3 of 20 test examples (2 higher vs 1 lower): too few" in few["sentence"]
    rng = np.random.default_rng(3)
    a = rng.random(40)
    unsure = scores.compare_scores(a, np.clip(a + rng.normal(0.01, 0.2, 40), 0, 1), "run A", "Run B", "token F1")
    assert not unsure["significant"] and "points of token F1" in unsure["sentence"]
    assert "paired permutation test p = " in unsure["sentence"] and "cannot tell them apart" in unsure["sentence"]
    worse = scores.compare_scores(B6, A6, "run A", "Run B", metric="token F1")
    assert worse["sentence"].startswith("Run B is 30.0 points of token F1 worse than run A (95 % CI \u2212")


def test_compare_scores_edges():
    one = scores.compare_scores([0.3], [0.8])
    assert one["n"] == 1 and one["p_value"] is None and not one["significant"] and one["p_mcnemar"] == 1.0
    assert one["ci_low"] < 0.5 < one["ci_high"]
    flat = scores.compare_scores([0.6] * 10, [0.6] * 10)
    assert flat["diff"] == 0.0 and flat["ci_low"] < 0.0 < flat["ci_high"] and flat["needed_n"] is None
    with pytest.raises(ConfigError, match="3 and 2 scores") as err:
        scores.compare_scores([0.1, 0.2, 0.3], [0.1, 0.2])
    assert "same examples" in err.value.hint
    with pytest.raises(ConfigError, match="missing") as err:
        scores.compare_scores([0.1, math.nan], [0.1, 0.2])
    assert err.value.hint
    with pytest.raises(ConfigError, match="No examples"):
        scores.compare_scores([], [])
    with pytest.raises(ConfigError, match="metric"):
        scores.compare_scores([0.1], [0.2], metric=" ")


def test_score_summary():
    s = scores.score_summary([0, 0.5, 1, 1])
    assert s == pytest.approx({"n": 4, "mean": 0.625, "ci_low": 0.2194, "ci_high": 0.9081, "median": 0.75,
                               "share_perfect": 0.5, "share_zero": 0.25}, abs=5e-5)
    empty = scores.score_summary([])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and (empty["ci_low"], empty["ci_high"]) == (0.0, 1.0)


# --- a small seeded simulation (bench/score_stats.py runs the full one) ---


def _token_f1_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Half the scores 1, a fifth 0, the rest beta(2, 2): mean 0.5 + 0.3 * 0.5 = 0.65."""
    u = rng.random(shape)
    return np.where(u < 0.5, 1.0, np.where(u < 0.7, 0.0, rng.beta(2, 2, shape)))


def _judge_like(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A 1-5 judge mapped to 0..1, mostly 4: 0.75 (70 %), 1 (15 %), 0.5 (10 %), 0 (5 %): mean 0.725."""
    return rng.choice([0.75, 1.0, 0.5, 0.0], p=[0.7, 0.15, 0.1, 0.05], size=shape)


@pytest.mark.parametrize(("draw", "mean"), [(_token_f1_like, 0.65), (_judge_like, 0.725)])
def test_simulated_coverage_and_false_positive_rate_at_n_30(draw, mean):
    """300 test sets of 30: the interval holds the true mean >= 92 % of the time, and under the null (each example's
    two scores exchangeable: half the examples shared, the rest drawn independently) the test rejects at p < 0.05 in
    <= 7 % (5 % +- 1.3 simulation error)."""
    rng = np.random.default_rng(2026)
    samples = draw(rng, (300, 30))
    covered = [low <= mean <= high for low, high in map(scores.mean_interval, samples)]
    assert np.mean(covered) >= 0.92, np.mean(covered)
    shared = rng.random((300, 30)) < 0.5
    base = draw(rng, (300, 30))
    a, b = np.where(shared, base, draw(rng, (300, 30))), np.where(shared, base, draw(rng, (300, 30)))
    rejected = [(c := scores.compare_scores(x, y))["p_value"] is not None and c["p_value"] < 0.05
                for x, y in zip(a, b, strict=True)]
    assert np.mean(rejected) <= 0.07, np.mean(rejected)
