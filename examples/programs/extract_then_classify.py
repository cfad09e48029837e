"""A two-stage DSPy pipeline: a ChainOfThought pulls the finding out of a sentence, then a Predict labels the
sentence's role in its abstract. The starting point for a program of your own (docs/programs.md).

    python -m core program describe examples/programs/extract_then_classify.py:make_program \
        --metric examples/programs/extract_then_classify.py:metric
"""

from typing import Literal

import dspy

ROLES = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")


class Extract(dspy.Signature):
    """Quote the part of the sentence that carries its finding or claim."""

    sentence: str = dspy.InputField()
    finding: str = dspy.OutputField(desc="a short quote from the sentence")


class Classify(dspy.Signature):
    """Label the sentence with its role in a randomized controlled trial's abstract."""

    sentence: str = dspy.InputField()
    finding: str = dspy.InputField()
    label: Literal[ROLES] = dspy.OutputField()


class ExtractThenClassify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extract = dspy.ChainOfThought(Extract)
        self.classify = dspy.Predict(Classify)

    def forward(self, sentence: str) -> dspy.Prediction:
        finding = self.extract(sentence=sentence).finding
        return self.classify(sentence=sentence, finding=finding)


def make_program() -> dspy.Module:
    return ExtractThenClassify()


def metric(gold: dspy.Example, pred: dspy.Prediction, trace=None, pred_name=None, pred_trace=None):
    """1 for the right label, else 0, with feedback GEPA's reflection can use."""
    right = str(getattr(pred, "label", "")).strip().upper() == str(gold.label).strip().upper()
    feedback = "Correct." if right else f"Wrong: expected {gold.label}, got {getattr(pred, 'label', None)!r}."
    return dspy.Prediction(score=float(right), feedback=feedback)
