"""The GEPA metric: a score and textual feedback a reflection model can learn from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Literal

import dspy

from core.program.answers import answer_from
from core.scoring import make_scorer
from core.scoring.labels import label_in_completion, normalize_label
from core.tasks import Task

__all__ = ["JudgeFeedback", "Parsed", "fields_metric", "label_in_completion", "make_metric", "normalize_label",
           "parse_prediction"]

logger = logging.getLogger(__name__)

FeedbackMode = Literal["rule", "judge"]
_EXCERPT = 600


@dataclass(frozen=True)
class Parsed:
    """What a program's answer to one text names: a label, or why not (``error``, of kind ``"parse"``)."""

    label: str | None
    raw: str | None = None  # what the model wrote, when it was not a clean answer
    error: str | None = None  # set exactly when ``label`` is None

    @property
    def kind(self) -> str | None:
        """The :data:`core.lm.breaker.FailureKind` of this answer: ``"parse"`` when it names no label, else None."""
        return "parse" if self.label is None else None


def parse_prediction(program: Any, inputs: dict[str, Any], output_field: str, labels: tuple[str, ...]) -> Parsed:
    """Run ``program`` on ``inputs`` and read its label as the evaluation and the served model both do.

    An answer DSPy's adapters could not parse is still read for a label (DSPy's Literal check refuses "POSITIVE"
    for "positive"; the GEPA metric reads it so too). Errors of the call itself (the provider's) are raised.
    """
    try:
        pred = program(**inputs)
    except dspy.utils.exceptions.AdapterParseError as exc:
        raw = str(exc.lm_response)
        label = label_in_completion(raw, output_field, labels)
        return Parsed(label, raw[:4000], None if label else "could not parse the answer")
    value = getattr(pred, output_field, None)
    label = normalize_label(value, labels)
    return Parsed(label) if label is not None else Parsed(None, str(value), "answer is not one of the labels")


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


def fields_metric(task: Task, scorer: Any) -> Callable[..., dspy.Prediction]:
    """GEPA's metric for a task beyond classification: the task's scorer (the one the evaluation uses) on the
    answer GEPA hands over (a ``FailedPrediction``'s completion read field by field). An example the scorer could
    not score (a judge or metric function that failed) scores 0 here (GEPA needs a number) and its feedback says
    why; the evaluation counts it as failed."""
    names = task.output_names
    if getattr(scorer, "gepa_style", False):  # your function written as GEPA calls a metric: called so
        def gepa_metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
                        pred_trace: Any = None) -> dspy.Prediction:
            score = scorer.as_gepa(gold, pred, trace, pred_name, pred_trace)
            if score.outcome == "failed":
                return dspy.Prediction(score=0.0, feedback=f"This answer could not be scored: {score.error}.")
            return dspy.Prediction(score=float(score.value or 0.0), feedback=score.feedback)

        return gepa_metric

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
               pred_trace: Any = None) -> dspy.Prediction:
        answer = answer_from(pred, names)
        if answer.error:
            return dspy.Prediction(score=0.0, feedback=(
                f"The answer could not be read: the model wrote {str(answer.raw)[:_EXCERPT]!r}. The instruction "
                f"should make the model give each of the fields {', '.join(names)} in the requested format."))
        score = scorer(gold.inputs(), {name: gold[name] for name in names}, answer.values)
        feedback = score.feedback
        if score.outcome == "failed":
            feedback = f"This answer could not be scored ({score.error_kind}: {score.error})."
        return dspy.Prediction(score=float(score.value or 0.0), feedback=feedback)

    return metric


def make_metric(task: Task, mode: FeedbackMode = "rule", judge_lm: Any = None,
                scorer: Any = None) -> Callable[..., dspy.Prediction]:
    """A GEPA-compatible metric ``(gold, pred, trace, pred_name, pred_trace) -> Prediction(score, feedback)``.

    ``mode="judge"`` asks ``judge_lm`` to write the rationale of each wrong answer (the score is still exact match).
    A task beyond classification is scored by ``scorer`` (default: its own metrics, a rubric judge on ``judge_lm``).
    """
    if not task.is_classification:
        return fields_metric(task, scorer or make_scorer(task.output_specs, task.metric, task.judge,
                                                         judge_lm=judge_lm))
    if mode == "judge" and judge_lm is None:
        from core.config.errors import ConfigError

        raise ConfigError("LLM-judge feedback needs a judge model.", "Pick a judge (usually the reflection model).")
    labels = task.labels
    described = dict(task.label_descriptions)
    judge = dspy.Predict(JudgeFeedback) if mode == "judge" else None

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
               pred_trace: Any = None) -> dspy.Prediction:
        expected = str(gold[task.output_field])
        sentence = str(gold[task.input_field])
        raw = _raw_output(pred)
        if raw is not None:
            predicted = label_in_completion(raw, task.output_field, labels)
        else:
            predicted = normalize_label(getattr(pred, task.output_field, None), labels)
        correct = predicted is not None and predicted == normalize_label(expected, labels)
        score = 1.0 if correct else 0.0
        excerpt = sentence if len(sentence) <= _EXCERPT else sentence[:_EXCERPT] + "..."
        if correct:
            feedback = f"Correct: the sentence was classified as {expected}."
        elif predicted is None:
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
        if raw is not None and predicted is not None:
            feedback += (f" The answer was not in the expected format (the model wrote {raw[:_EXCERPT]!r}); the "
                         "instruction should ask for the label exactly as listed.")
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
