"""Statistics for scores in [0, 1] by simulation: mean_interval's coverage, compare_scores' false positives and power.

Draws scores that look like real ones (token F1: many 1s, some 0s, some in between; uniform; beta(2,5); mostly 0.8
with a fifth spread out; an LLM judge on a 1-5 scale mapped to 0..1; all 0.9 but a rare 0; a tight beta(40,10)) and
measures, with REPS replications per cell (+-1 % at 95 %):
(1) how often ``mean_interval`` holds the true mean at n = 10, 30, 100 (target >= 93 %, nominal 95 %);
(2) how often ``compare_scores`` calls a difference significant (p < 0.05) when there is none: both runs' scores from
    the same distribution, paired through a Gaussian copula with correlation RHO (target <= 6 %, nominal 5 %), and
    how often its interval holds the true difference 0; plus, for information, a null with the same mean but
    another shape (the permutation test assumes exchangeable runs);
(3) for information, its power and interval coverage at a true difference of +0.1 at n = 100 (run b scores 1 instead
    of its draw with a fixed chance).
The last line is the worst coverage and the worst false-positive rate, with their ratios to target.
Run: .venv/bin/python bench/score_stats.py [replications]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from _common import ROOT  # noqa: F401  (puts the repository on sys.path)

from core.analytics.scores import compare_scores, mean_interval

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
SIZES = (10, 30, 100)
RHO = 0.5
COVERAGE_TARGET, FPR_TARGET = 0.93, 0.06
Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _mix(values: list[float], probs: list[float], rest: Sampler | None = None) -> Sampler:
    """Point masses ``values`` with ``probs``; the remaining probability drawn from ``rest``."""
    def draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        u = rng.random(shape)
        out = rest(rng, shape) if rest else np.zeros(shape)
        edges = np.cumsum(probs)
        for value, low, high in zip(values, np.concatenate(([0.0], edges[:-1])), edges, strict=True):
            out = np.where((u >= low) & (u < high), value, out)
        return out
    return draw


def _beta(a: float, b: float) -> Sampler:
    return lambda rng, shape: rng.beta(a, b, shape)


DISTRIBUTIONS: dict[str, tuple[Sampler, float]] = {  # name: (sampler, true mean)
    "token F1 (50% 1, 20% 0)": (_mix([1.0, 0.0], [0.5, 0.2], _beta(2, 2)), 0.5 + 0.3 * 0.5),
    "token F1 easy (85% 1)": (_mix([1.0, 0.0], [0.85, 0.07], _beta(2, 2)), 0.85 + 0.08 * 0.5),
    "uniform": (lambda rng, shape: rng.random(shape), 0.5),
    "beta(2,5)": (_beta(2, 5), 2 / 7),
    "mostly 0.8 (20% uniform)": (_mix([0.8], [0.8], lambda rng, shape: rng.random(shape)), 0.8 * 0.8 + 0.2 * 0.5),
    "judge 1-5 (70% 0.75)": (_mix([0.75, 1.0, 0.5, 0.0], [0.7, 0.15, 0.1, 0.05]), 0.525 + 0.15 + 0.05),
    "all 0.9 but a rare 0 (3%)": (_mix([0.9, 0.0], [0.97, 0.03]), 0.97 * 0.9),
    "tight beta(40,10)": (_beta(40, 10), 0.8),
}


def coverage_table() -> list[tuple[float, str]]:
    """Coverage of mean_interval per distribution and n; returns (coverage, cell) for every cell."""
    cells = []
    print(f"mean_interval: coverage of the true mean (width), {REPS:,} replications per cell")
    print(f"{'distribution':28s}" + "".join(f"{'n=' + str(n):>18s}" for n in SIZES))
    for row_no, (name, (draw, mu)) in enumerate(DISTRIBUTIONS.items()):
        row = f"{name:28s}"
        for n in SIZES:
            samples = draw(np.random.default_rng(1000 * row_no + n), (REPS, n))  # a stream per cell
            bounds = np.array([mean_interval(s) for s in samples])
            cover = float(np.mean((bounds[:, 0] <= mu) & (mu <= bounds[:, 1])))
            row += f"{cover:>10.1%} ({np.mean(bounds[:, 1] - bounds[:, 0]):.3f})"
            cells.append((cover, f"{name}, n={n}"))
        print(row, flush=True)
    return cells


def _quantiles(draw: Sampler) -> np.ndarray:
    """A sorted large sample: its values at uniform ranks are draws from ``draw`` (an inverse CDF for any mixture)."""
    return np.sort(draw(np.random.default_rng(123), (200_000,)))


def _pairs(qa: np.ndarray, qb: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """REPS paired samples of n: a from ``qa``, b from ``qb``, their ranks correlated through a Gaussian copula."""
    z1 = rng.standard_normal((REPS, n))
    z2 = RHO * z1 + np.sqrt(1 - RHO**2) * rng.standard_normal((REPS, n))
    cdf = np.vectorize(NormalDist().cdf)
    ranks = [np.minimum((cdf(z) * qa.size).astype(int), qa.size - 1) for z in (z1, z2)]
    return qa[ranks[0]], qb[ranks[1]]


def _run(qa: np.ndarray, qb: np.ndarray, n: int, truth: float, seed: int) -> tuple[float, float]:
    """(share significant at p < 0.05, share of intervals holding ``truth``) over REPS paired samples."""
    a, b = _pairs(qa, qb, n, np.random.default_rng(seed))
    hits = cover = 0
    for x, y in zip(a, b, strict=True):
        c = compare_scores(x, y)
        hits += c["p_value"] is not None and c["p_value"] < 0.05
        cover += c["ci_low"] - 1e-12 <= truth <= c["ci_high"] + 1e-12
    return hits / REPS, cover / REPS


def null_table() -> list[tuple[float, str]]:
    """False-positive rate and diff-interval coverage under the null; returns (rate, cell) for every counted cell."""
    cells = []
    print(f"\ncompare_scores under the null (same distribution, copula correlation {RHO}): false-positive rate at "
          f"p < 0.05 | coverage of the difference 0, {REPS:,} replications per cell")
    print(f"{'distribution':28s}" + "".join(f"{'fpr n=' + str(n):>12s}" for n in SIZES)
          + "".join(f"{'cover n=' + str(n):>14s}" for n in SIZES))
    for row_no, (name, (draw, _mu)) in enumerate(DISTRIBUTIONS.items()):
        q = _quantiles(draw)
        results = [_run(q, q, n, 0.0, 1000 * row_no + n + 7) for n in SIZES]  # a stream per cell: cells independent
        print(f"{name:28s}" + "".join(f"{r[0]:>12.1%}" for r in results)
              + "".join(f"{r[1]:>14.1%}" for r in results), flush=True)
        cells += [(r[0], f"{name}, n={n}") for r, n in zip(results, SIZES, strict=True)]
    qa, qb = _quantiles(DISTRIBUTIONS["token F1 (50% 1, 20% 0)"][0]), _quantiles(_beta(6.5, 3.5))
    results = [_run(qa, qb, n, float(qb.mean() - qa.mean()), 99_000 + n) for n in SIZES]
    print(f"{'(info) same mean 0.65:':28s}" + "".join(f"{r[0]:>12.1%}" for r in results)
          + "".join(f"{r[1]:>14.1%}" for r in results) + "   token F1 vs beta(6.5,3.5)")
    return cells


def power_table() -> None:
    """For information: power and coverage at a true difference of +0.1 with n = 100."""
    print(f"\n(info) compare_scores at a true difference of +0.1, n = 100: power | coverage, {REPS:,} replications")
    for row_no, (name, (draw, mu)) in enumerate(DISTRIBUTIONS.items()):
        chance = 0.1 / (1 - mu)  # b scores 1 instead of its draw with this chance: its mean is mu + 0.1

        def better(rng: np.random.Generator, shape: tuple[int, ...], draw: Sampler = draw,
                   chance: float = chance) -> np.ndarray:
            return np.where(rng.random(shape) < chance, 1.0, draw(rng, shape))

        qa, qb = _quantiles(draw), _quantiles(better)
        power, cover = _run(qa, qb, 100, float(qb.mean() - qa.mean()), 50_000 + row_no)
        print(f"{name:28s}{power:>10.1%}{cover:>10.1%}", flush=True)


def main() -> None:
    start = time.perf_counter()
    coverage = coverage_table()
    rates = null_table()
    power_table()
    worst_cover, worst_rate = min(coverage), max(rates)
    error = 100 * np.sqrt(0.05 * 0.95 / REPS)  # one simulation standard error at 95 % / 5 %, in points
    print(f"\n{time.perf_counter() - start:.0f} s. worst coverage {worst_cover[0]:.1%} ({worst_cover[1]}; ratio to "
          f"target {worst_cover[0] / COVERAGE_TARGET:.2f}), worst false-positive rate {worst_rate[0]:.1%} "
          f"({worst_rate[1]}; ratio to target {worst_rate[0] / FPR_TARGET:.2f}, <= 1 is good); "
          f"one cell's simulation error +-{error:.1f} points")


if __name__ == "__main__":
    main()
