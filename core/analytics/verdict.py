"""The verdict on a pair of runs scored on the same examples, in numbers and in one sentence a page prints.

The difference comes with Newcombe's paired score interval, the exact McNemar p-value (none when too few examples
are discordant for any outcome to reach p < 0.05) and how many test examples would resolve a difference of the size
seen at 80 % power (see ``core.analytics.stats.compare_paired``). A task scored in [0, 1] gets the same numbers
for its mean scores: a paired permutation test and the generalised Newcombe interval (``core.analytics.scores``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from core.analytics import scores, stats
from core.analytics.flips import aligned_records, flags, require_records, scores_of
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Run b against run a on the same n examples; accuracies, ``diff`` (b - a) and its interval in 0..1."""

    n: int
    accuracy_a: float
    accuracy_b: float
    diff: float
    ci_low: float
    ci_high: float
    a_only: int  # examples only a gets right (scores: examples a scores higher on)
    b_only: int  # examples only b gets right (scores: examples b scores higher on)
    p_value: float | None  # exact McNemar (scores: the paired permutation test); None when too few examples differ
    needed_n: int | None  # test examples that would resolve a difference of this size (None: no difference seen)
    sentence: str
    metric: str = "accuracy"  # what accuracy_a / accuracy_b measure: accuracy, or a task's mean score ("token F1")
    test: str = "exact McNemar"  # the paired test behind p_value

    def __post_init__(self) -> None:
        if self.n < 1 or self.a_only < 0 or self.b_only < 0 or self.a_only + self.b_only > self.n:
            raise ConfigError(f"A verdict needs 0 <= a_only + b_only <= n and n >= 1, got n={self.n}, "
                              f"a_only={self.a_only}, b_only={self.b_only}.")
        for name in ("accuracy_a", "accuracy_b"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in 0..1, got {getattr(self, name)!r}.")
        if not (self.ci_low - 1e-9 <= self.diff <= self.ci_high + 1e-9 and -1.0 <= self.ci_low <= self.ci_high <= 1.0):
            raise ConfigError(f"The interval ({self.ci_low}, {self.ci_high}) must hold diff={self.diff} within -1..1.")
        if self.p_value is not None and not 0.0 <= self.p_value <= 1.0:
            raise ConfigError(f"p_value must lie in 0..1 or be None, got {self.p_value!r}.")
        if self.needed_n is not None and self.needed_n < 1:
            raise ConfigError(f"needed_n must be a positive count or None, got {self.needed_n!r}.")
        if not self.sentence:
            raise ConfigError("A verdict needs its sentence.")

    @property
    def significant(self) -> bool:
        """A p-value under 0.05 and an interval without 0: the page may say which run is better."""
        return self.p_value is not None and self.p_value < 0.05 and (self.ci_low > 0 or self.ci_high < 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(records_a: pd.DataFrame, records_b: pd.DataFrame, name_a: str, name_b: str,
            metric: str = "accuracy") -> Verdict:
    """The verdict on run b (``name_b``) against run a (``name_a``) from their ``records.csv`` frames.

    Examples are matched by ``idx`` (see ``flips.aligned_records``); raises ConfigError with a hint when the two
    runs did not score the same examples or have no records. A task scored in [0, 1] (``metric`` names it, e.g.
    "token F1") is compared by its scores (``core.analytics.scores.compare_scores``: exactly McNemar and Newcombe
    when every score is 0 or 1).
    """
    for name, label in (("name_a", name_a), ("name_b", name_b)):
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{name} must name the run in the sentence, got {label!r}.",
                              "Pass the run's label, e.g. 'stub-small · Predict'.")
    require_records(records_a, name_a)
    require_records(records_b, name_b)
    a, b = aligned_records(records_a, records_b)
    if metric == "accuracy":
        c = {**stats.compare_paired(flags(a["correct"]), flags(b["correct"]), name_a.strip(), name_b.strip()),
             "test": "exact McNemar"}
    else:
        c = scores.compare_scores(scores_of(a), scores_of(b), name_a.strip(), name_b.strip(), metric)
    p_value = c["p_value"]
    return Verdict(
        n=int(c["n"]), accuracy_a=float(c["accuracy_a"]), accuracy_b=float(c["accuracy_b"]), diff=float(c["diff"]),
        ci_low=float(c["ci_low"]), ci_high=float(c["ci_high"]), a_only=int(c["a_only"]), b_only=int(c["b_only"]),
        p_value=None if p_value is None or math.isnan(p_value) else float(p_value),
        needed_n=c["needed_n"], sentence=str(c["sentence"]), metric=metric, test=str(c["test"]),
    )
