"""One scoring path: a :class:`Scorer` turns an example's gold outputs and a program's predicted outputs into a
:class:`Score` (a value in [0, 1], feedback a reflection model can learn from, and an outcome). GEPA's metric and the
evaluation both call it; nothing else scores an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol

Outcome = Literal["correct", "partial", "wrong", "failed"]
OUTCOMES: tuple[str, ...] = ("correct", "partial", "wrong", "failed")
# The failure kinds a scorer adds to the provider's (core.lm.breaker.FAILURE_KINDS): the answer named nothing the
# field can hold ("parse"), the user's metric function failed ("metric"), the judge failed or answered unreadably.
SCORER_FAILURE_KINDS: tuple[str, ...] = ("parse", "metric", "judge")
_EPS = 1e-9


def outcome_of(value: float) -> Outcome:
    """``correct`` at 1, ``wrong`` at 0, ``partial`` between."""
    if value >= 1 - _EPS:
        return "correct"
    return "wrong" if value <= _EPS else "partial"


@dataclass(frozen=True)
class Score:
    """What one example scored: ``value`` in [0, 1] (None when ``failed``), feedback, per-field scores."""

    value: float | None
    feedback: str
    outcome: Outcome
    fields: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None  # set exactly when outcome is "failed"
    error_kind: str | None = None  # one of SCORER_FAILURE_KINDS when failed

    @classmethod
    def of(cls, value: float, feedback: str, fields: Mapping[str, float] | None = None) -> "Score":
        """A score that counts (its outcome from its value)."""
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) \
                or not 0.0 <= value <= 1.0:
            raise ValueError(f"a score must be a number in [0, 1], got {value!r}")
        return cls(float(value), feedback, outcome_of(float(value)), dict(fields or {}))

    @classmethod
    def failed(cls, kind: str, error: str, feedback: str = "") -> "Score":
        """No score: the example is ``failed`` (never 0) of ``kind``, with the message that says why."""
        return cls(None, feedback or error, "failed", {}, error[:500], kind)


class Scorer(Protocol):
    """``scorer(inputs, gold, predicted) -> Score``: ``inputs`` and ``gold`` map field names to the example's
    values, ``predicted`` maps output field names to the program's values (None where it gave none)."""

    name: str  # what charts and verdicts call the metric: "exact match", "token F1", "judge: tone"

    def __call__(self, inputs: Mapping[str, Any], gold: Mapping[str, Any],
                 predicted: Mapping[str, Any]) -> Score: ...
