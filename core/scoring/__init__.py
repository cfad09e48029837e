"""Scoring: one path from an example's gold outputs and a program's predicted outputs to a Score (value, feedback,
outcome). Field metrics (the FIELD_METRICS table), an LLM judge by a rubric, the user's own function, and
``make_scorer`` that picks among them. Imports core.tasks, core.config, core.lm and dspy; never core.program (which
imports it) or anything above."""

from core.scoring.base import OUTCOMES, SCORER_FAILURE_KINDS, Outcome, Score, Scorer, outcome_of
from core.scoring.build import make_scorer, metric_label
from core.scoring.fields import FIELD_METRICS, FieldMetric, Tolerance, normalize_answer, parse_metric, token_f1
from core.scoring.judge import Judge
from core.scoring.labels import label_in_completion, normalize_label
from core.scoring.user import load_function

__all__ = [
    "FIELD_METRICS", "FieldMetric", "Judge", "OUTCOMES", "Outcome", "SCORER_FAILURE_KINDS", "Score", "Scorer",
    "Tolerance", "label_in_completion", "load_function", "make_scorer", "metric_label", "normalize_answer",
    "normalize_label", "outcome_of", "parse_metric", "token_f1",
]
