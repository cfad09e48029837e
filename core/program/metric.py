"""The GEPA metric: a score and textual feedback a reflection model can learn from."""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

import dspy

from core.tasks import Task, label_key

logger = logging.getLogger(__name__)

FeedbackMode = Literal["rule", "judge"]
_EXCERPT = 600


# What a model wraps an answer in: quotes, backticks, brackets, markdown bold; tried outermost first.
_WRAPPERS = (("**", "**"), ("`", "`"), ('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"),
             ("[", "]"), ("(", ")"), ("{", "}"), ("<", ">"))


def _unwrapped(text: str) -> list[str]:
    """``text``, then ``text`` with one wrapper pair removed at a time (and a final full stop dropped)."""
    out = [text.strip()]
    while True:
        current = out[-1]
        inner = next((current[len(a):-len(b)].strip() for a, b in _WRAPPERS
                      if len(current) >= len(a) + len(b) and current.startswith(a) and current.endswith(b)), None)
        if inner is None and current.endswith(".") and len(current) > 1:
            inner = current[:-1].strip()
        if not inner or inner in out:
            return out
        out.append(inner)


@functools.lru_cache(maxsize=64)
def _label_index(labels: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Two lookups: label_key -> label, and label_key of the label without its own quotes -> label.

    A key two labels share is left out, so a lookup never picks one of two labels at random.
    """
    def unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
        seen: dict[str, str | None] = {}
        for key, label in pairs:
            seen[key] = label if seen.get(key, label) == label else None
        return {k: v for k, v in seen.items() if v is not None}

    exact = unique([(label_key(label), label) for label in labels])
    bare = unique([(label_key(_unwrapped(label)[-1]), label) for label in labels])
    return exact, bare


def normalize_label(value: Any, labels: tuple[str, ...]) -> str | None:
    """The label ``value`` names, or None if it names none.

    Case, spacing, Unicode compatibility forms and invisible characters are ignored (the same
    :func:`core.tasks.label_key` that keeps a task's labels apart), and so are quotes, backticks or
    brackets the model wrapped its answer in; a label that itself holds quotes (``"positive"``, ``it's``)
    matches both with and without them.
    """
    if value is None:
        return None
    text = str(value)
    if text in labels:
        return text
    exact, bare = _label_index(tuple(labels))
    for candidate in _unwrapped(text):
        key = label_key(candidate)
        if key in exact:
            return exact[key]
    for candidate in _unwrapped(text):
        key = label_key(candidate)
        if key in bare:
            return bare[key]
    return None


def label_in_completion(text: str, field: str, labels: tuple[str, ...]) -> str | None:
    """The label a raw completion the adapter could not parse names in ``field`` (DSPy's ChatAdapter
    ``[[ ## field ## ]]`` section or a JSON object), or None: "POSITIVE" for "positive" is still that label."""
    section = re.search(r"\[\[ ## " + re.escape(field) + r" ## \]\]\s*\n(.*?)(?=\n\s*\[\[ ## |\Z)", text, re.S)
    if section:
        return normalize_label(section.group(1).strip(), labels)
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return normalize_label(obj.get(field), labels) if isinstance(obj, dict) else None


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


def make_metric(task: Task, mode: FeedbackMode = "rule", judge_lm: Any = None) -> Callable[..., dspy.Prediction]:
    """A GEPA-compatible metric ``(gold, pred, trace, pred_name, pred_trace) -> Prediction(score, feedback)``.

    ``mode="judge"`` asks ``judge_lm`` to write the rationale of each wrong answer (the score is still exact match).
    """
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
