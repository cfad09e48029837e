"""An LLM judge: a model scores a prediction against the expected outputs by a rubric the user writes.

A judge that cannot give a usable score (its call failed, its answer does not parse, its score is outside [0, 1] or
NaN) makes the example *failed* of kind ``"judge"``, never 0: a judge's outage must not read as a bad program.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

import dspy

from core.config.errors import ConfigError
from core.lm.breaker import BreakerTripped, classify_failure
from core.scoring.base import Score
from core.tasks.fields import JudgeSpec

logger = logging.getLogger(__name__)

_VALUE_CHARS = 2000  # of each value shown to the judge


class JudgeAnswer(dspy.Signature):
    """Judge how well the predicted outputs of a task answer its inputs, by the rubric. The expected outputs are
    a reference answer. Give a short rationale first, then a score from 0.0 (fails the rubric) to 1.0 (fully meets
    it)."""

    task_inputs: str = dspy.InputField(desc="the inputs the task was given")
    expected_outputs: str = dspy.InputField(desc="a reference answer")
    predicted_outputs: str = dspy.InputField(desc="the answer to judge")
    rubric: str = dspy.InputField(desc="what a good answer is, and what earns 0 and 1")
    rationale: str = dspy.OutputField(desc="two or three sentences: what is right and what is wrong")
    score: float = dspy.OutputField(desc="a number from 0.0 to 1.0")


def _render(values: Mapping[str, Any]) -> str:
    """``name: value`` lines, each value cut to a length a judge can read."""
    lines = []
    for name, value in values.items():
        text = "(none given)" if value is None else str(value)
        lines.append(f"{name}: {text[:_VALUE_CHARS]}{'...' if len(text) > _VALUE_CHARS else ''}")
    return "\n".join(lines) or "(none)"


class Judge:
    """A :class:`core.scoring.base.Scorer` that asks ``lm`` for a score by ``spec.rubric``.

    Thread-safe: the module holds no per-call state, and the LM is set per call with ``dspy.context`` (a thread's
    own settings), so the evaluation's threads can share one judge.
    """

    def __init__(self, spec: JudgeSpec, lm: Any) -> None:
        if lm is None:
            raise ConfigError(f"The judge {spec.name!r} has no model.", "Pick a judge model (or a reflection model).")
        self.spec = spec
        self.lm = lm
        self.name = f"judge: {spec.name}"
        self._predict = dspy.Predict(JudgeAnswer)

    def __call__(self, inputs: Mapping[str, Any], gold: Mapping[str, Any], predicted: Mapping[str, Any]) -> Score:
        try:
            with dspy.context(lm=self.lm):
                out = self._predict(task_inputs=_render(inputs), expected_outputs=_render(gold),
                                    predicted_outputs=_render(predicted), rubric=self.spec.rubric)
        except dspy.utils.exceptions.AdapterParseError as exc:
            raw = str(getattr(exc, "lm_response", "") or "")[:300]
            return Score.failed("judge", f"{self.name} answered unreadably (no score could be read): {raw!r}")
        except BreakerTripped:
            raise  # the judge's provider is gone: that stops the run, it is no one example's failure
        except Exception as exc:  # noqa: BLE001 - one example's judge failure is that example's, never the run's
            kind = classify_failure(exc)
            logger.warning("%s failed (%s): %s", self.name, kind, exc)
            return Score.failed("judge", f"{self.name} call failed ({kind}): {exc}")
        return self._score(getattr(out, "score", None), str(getattr(out, "rationale", "") or "").strip())

    def _score(self, value: Any, rationale: str) -> Score:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return Score.failed("judge", f"{self.name} gave no number as its score: {value!r}")
        if isinstance(value, bool) or math.isnan(number) or not 0.0 <= number <= 1.0:
            return Score.failed("judge", f"{self.name} gave a score outside [0, 1]: {value!r}",
                                f"Judge (unusable score {value!r}): {rationale}")
        return Score.of(number, f"Judge: {rationale}")
