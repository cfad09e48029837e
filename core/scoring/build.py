"""From a task's outputs and the metric it names to the one :class:`core.scoring.base.Scorer` that scores it.

``metric`` is ``""`` (each output by its own ``spec.metric_name``), a field metric name from
:data:`core.scoring.fields.FIELD_METRICS` (every output by it), ``"judge"`` (an LLM judge by a rubric), or
``"path/to/file.py:fn"`` (the user's own function). Several outputs score as the weighted mean of their fields.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

from core.config.errors import ConfigError
from core.scoring.base import Score, Scorer
from core.scoring.fields import FIELD_METRICS, parse_metric
from core.scoring.judge import Judge
from core.scoring.user import FunctionScorer, load_function
from core.tasks.fields import JudgeSpec, OutputSpec

logger = logging.getLogger(__name__)

_CUT = 300  # characters of an expected / predicted value a feedback line shows
_METRIC_HINT = (f"Use a field metric ({', '.join(FIELD_METRICS)}; numeric takes a tolerance: numeric:0.01 or "
                "numeric:1%), judge, or path/to/file.py:fn for your own function.")

Part = tuple[OutputSpec, str, "float | None"]  # an output, its metric's name, the metric's parameter


def _is_function(metric: str) -> bool:
    return metric.rpartition(":")[0].strip().lower().endswith(".py")


def _parse(metric: str, spec: OutputSpec) -> tuple[str, float | None]:
    try:
        return parse_metric(metric)
    except ConfigError as exc:
        raise ConfigError(f"Output {spec.column!r}: {exc.message}", _METRIC_HINT) from exc


def _parts(outputs: tuple[OutputSpec, ...], metric: str) -> tuple[Part, ...]:
    if not outputs:
        raise ConfigError("The task has no output field to score.", "Pick at least one output column.")
    names = [spec.name for spec in outputs]
    if len(set(names)) != len(names):
        raise ConfigError(f"Two outputs share a field name: {names}.", "Rename one of the output columns.")
    return tuple((spec, *_parse(metric or spec.metric_name, spec)) for spec in outputs)


def metric_label(outputs: tuple[OutputSpec, ...], metric: str = "", judge: JudgeSpec | None = None) -> str:
    """What charts call the metric: "token F1", "numeric (±0.01)", "judge: tone", "my_fn (your function)",
    "token F1, mean of drug, dose" (several fields, one metric, equal weights), "weighted: drug token F1 ×2, dose
    numeric (±1 %)"."""
    metric = (metric or "").strip()
    if metric == "judge":
        return f"judge: {judge.name}" if judge is not None else "judge"
    if _is_function(metric):
        name = metric.rpartition(":")[2].strip()
        return "your metric" if name.lower() in ("metric", "score") else f"{name} (your function)"
    parts = _parts(tuple(outputs), metric)
    if len(parts) == 1:
        return FIELD_METRICS[parts[0][1]].label(parts[0][2])
    labels = [FIELD_METRICS[name].label(param) for _, name, param in parts]
    weights = [spec.weight for spec, _, _ in parts]
    if len(set(labels)) == 1 and len(set(weights)) == 1:
        return f"{labels[0]}, mean of {', '.join(spec.name for spec, _, _ in parts)}"
    return "weighted: " + ", ".join(f"{spec.name} {label}" + (f" ×{spec.weight:g}" if spec.weight != 1 else "")
                                    for (spec, _, _), label in zip(parts, labels, strict=True))


def _value(values: Mapping[str, Any], spec: OutputSpec) -> Any:
    return values[spec.name] if spec.name in values else values.get(spec.column)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else str(value)
    return repr(text if len(text) <= _CUT else text[:_CUT] + "...")


class FieldScorer:
    """Scores each output by its field metric; the example's score is the weighted mean (weights: ``spec.weight``).

    Pure and thread-safe: it holds only the parts it was built with.
    """

    def __init__(self, parts: tuple[Part, ...], name: str) -> None:
        self.parts = parts
        self.name = name
        self._total_weight = sum(spec.weight for spec, _, _ in parts)
        if self._total_weight <= 0:
            raise ConfigError("Every output has weight 0: nothing would count.", "Give at least one output a weight.")

    def __call__(self, inputs: Mapping[str, Any], gold: Mapping[str, Any], predicted: Mapping[str, Any]) -> Score:
        values: dict[str, float] = {}
        lines: list[str] = []
        for spec, name, param in self.parts:
            value, line = self._field(spec, name, param, _value(gold, spec), _value(predicted, spec))
            values[spec.name] = value
            lines.append(line)
        total = sum(spec.weight * values[spec.name] for spec, _, _ in self.parts) / self._total_weight
        return Score.of(min(1.0, max(0.0, total)), "\n".join(lines), values)

    @staticmethod
    def _field(spec: OutputSpec, name: str, param: float | None, gold: Any, predicted: Any) -> tuple[float, str]:
        if predicted is None:
            return 0.0, f"{spec.name}: gave no {spec.name}; expected {_shown(gold)}."
        value, feedback = FIELD_METRICS[name].score(gold, predicted, spec, param)
        value = min(1.0, max(0.0, float(value)))
        if value >= 1.0:
            return value, f"{spec.name}: correct."
        return value, f"{spec.name}: expected {_shown(gold)}, predicted {_shown(predicted)}. {feedback}"


def make_scorer(outputs: tuple[OutputSpec, ...], metric: str = "", judge: JudgeSpec | None = None,
                judge_lm: Any = None, functions_dir: str | Path | None = None) -> Scorer:
    """The scorer for a task's ``outputs`` by ``metric`` (see the module's docstring); its ``name`` is
    :func:`metric_label`. Raises ConfigError for an unknown metric, a judge without a rubric or model, a function
    that cannot be loaded (or lies outside ``functions_dir`` when given), or weights that are all 0."""
    outputs = tuple(outputs)
    metric = (metric or "").strip()
    if not outputs:
        raise ConfigError("The task has no output field to score.", "Pick at least one output column.")
    label = metric_label(outputs, metric, judge)
    scorer: Any
    if metric == "judge":
        if judge is None or judge_lm is None:
            raise ConfigError("The judge metric needs a rubric and a judge model.",
                              "Write the rubric, and pick the judge's model (or a reflection model).")
        scorer = Judge(judge, judge_lm)
    elif _is_function(metric):
        scorer = FunctionScorer(load_function(metric, allowed_dir=functions_dir), metric)
    else:
        scorer = FieldScorer(_parts(outputs, metric), label)
    scorer.name = label
    return scorer
