"""The GEPA metric: a score and textual feedback a reflection model can learn from."""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal

import dspy

from core.tasks import Task

logger = logging.getLogger(__name__)

FeedbackMode = Literal["rule", "judge"]
_EXCERPT = 600


def normalize_label(value: Any, labels: tuple[str, ...]) -> str | None:
    """The label ``value`` names (case- and space-insensitive), or None if it names none."""
    if value is None:
        return None
    text = str(value).strip().strip("'\"").strip()
    for label in labels:
        if text.lower() == label.lower():
            return label
    return None


def _raw_output(pred: Any) -> str | None:
    # GEPA hands the metric a FailedPrediction (with completion_text) when the adapter could not parse.
    text = getattr(pred, "completion_text", None)
    return str(text) if text is not None else None


class JudgeFeedback(dspy.Signature):
    """Explain to a prompt engineer why the classifier's answer is right or wrong, and what rule would fix it."""

    sentence: str = dspy.InputField()
    allowed_labels: str = dspy.InputField()
    expected_label: str = dspy.InputField()
    predicted_label: str = dspy.InputField()
    rationale: str = dspy.OutputField(desc="two or three sentences")


def make_metric(task: Task, mode: FeedbackMode = "rule", judge_lm: Any = None) -> Callable[..., dspy.Prediction]:
    """A GEPA-compatible metric ``(gold, pred, trace, pred_name, pred_trace) -> Prediction(score, feedback)``.

    ``mode="judge"`` asks ``judge_lm`` to write the rationale of each wrong answer (the score is still exact match).
    """
    if mode == "judge" and judge_lm is None:
        from core.errors import ConfigError

        raise ConfigError("LLM-judge feedback needs a judge model.", "Pick a judge (usually the reflection model).")
    labels = task.labels
    described = dict(task.label_descriptions)
    judge = dspy.Predict(JudgeFeedback) if mode == "judge" else None

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> dspy.Prediction:
        expected = str(gold[task.output_field])
        sentence = str(gold[task.input_field])
        raw = _raw_output(pred)
        predicted = None if raw is not None else normalize_label(getattr(pred, task.output_field, None), labels)
        correct = predicted is not None and predicted == normalize_label(expected, labels)
        score = 1.0 if correct else 0.0
        excerpt = sentence if len(sentence) <= _EXCERPT else sentence[:_EXCERPT] + "..."
        if correct:
            feedback = f"Correct: the sentence was classified as {expected}."
        elif raw is not None or predicted is None:
            wrote = raw if raw is not None else str(getattr(pred, task.output_field, None))
            feedback = (
                f"The answer could not be read as one of {', '.join(labels)}. The model wrote: {wrote[:_EXCERPT]!r}. "
                f"The expected label was {expected}. Sentence: {excerpt!r}. "
                "The instruction should make the model answer with exactly one label name."
            )
        else:
            feedback = f"Wrong: predicted {predicted}, expected {expected}. Sentence: {excerpt!r}."
            if expected in described:
                feedback += f" {expected} means: {described[expected]}"
            if predicted in described:
                feedback += f" {predicted} means: {described[predicted]}"
        if judge is not None and not correct:
            try:
                with dspy.context(lm=judge_lm):
                    out = judge(
                        sentence=excerpt, allowed_labels=", ".join(labels),
                        expected_label=expected, predicted_label=str(predicted or raw),
                    )
                feedback += f" Judge: {out.rationale}"
            except Exception as exc:  # noqa: BLE001 - the judge is an extra; its failure keeps rule feedback
                logger.warning("judge failed: %s", exc)
        return dspy.Prediction(score=score, feedback=feedback)

    return metric
