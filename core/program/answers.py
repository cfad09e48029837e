"""Reading a program's answer to one example of a task beyond classification: every output field's value, also
from a completion DSPy's adapters could not parse (a "5 mg" where a float was asked for is still read and scored by
the field's metric, as a label task reads "POSITIVE" for "positive"). The evaluation, GEPA's metric and the served
model all read answers here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import dspy

from core.tasks import Task

_RAW_LIMIT = 4000


@dataclass(frozen=True)
class Answer:
    """The values a program gave (output name -> value; None where it gave none), or why none could be read."""

    values: Mapping[str, Any] = field(default_factory=dict)
    raw: str | None = None  # what the model wrote, when the adapter could not parse it
    error: str | None = None  # set when no output field could be read at all

    @property
    def kind(self) -> str | None:
        """``"parse"`` when no output could be read, else None (a missing field is scored, not a failure)."""
        return "parse" if self.error else None


def fields_in_completion(text: str, names: tuple[str, ...]) -> dict[str, str]:
    """The output fields a raw completion names: DSPy's ChatAdapter ``[[ ## field ## ]]`` sections, or the keys of
    a JSON object (JSONAdapter); fields it does not name are left out."""
    found: dict[str, str] = {}
    for name in names:
        section = re.search(r"\[\[ ## " + re.escape(name) + r" ## \]\]\s*\n(.*?)(?=\n\s*\[\[ ## |\Z)", text, re.S)
        if section:
            found[name] = section.group(1).strip()
    if found:
        return found
    try:
        obj = json.loads(text)
    except ValueError:
        return {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items() if k in names} \
        if isinstance(obj, dict) else {}


def answer_from(pred: Any, names: tuple[str, ...]) -> Answer:
    """The answer in a prediction, or in a GEPA ``FailedPrediction`` (its ``completion_text``)."""
    raw = getattr(pred, "completion_text", None)
    if raw is not None:
        return _from_raw(str(raw), names)
    return Answer({name: getattr(pred, name, None) for name in names})


def _from_raw(raw: str, names: tuple[str, ...]) -> Answer:
    values = fields_in_completion(raw, names)
    if not values:
        return Answer({name: None for name in names}, raw[:_RAW_LIMIT], "could not parse the answer")
    return Answer({name: values.get(name) for name in names}, raw[:_RAW_LIMIT])


def read_answer(program: Any, inputs: Mapping[str, Any], task: Task) -> Answer:
    """Run ``program`` on ``inputs`` and read every output field of ``task``. Errors of the call itself (the
    provider's) are raised."""
    names = task.output_names
    try:
        pred = program(**inputs)
    except dspy.utils.exceptions.AdapterParseError as exc:
        return _from_raw(str(exc.lm_response), names)
    return Answer({name: getattr(pred, name, None) for name in names})


def shown(value: Any) -> str:
    """A field value as records and pages show it: text as is, lists as "a; b", objects and numbers as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, set)):
        return "; ".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def shown_fields(values: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """Several fields as one cell: a single field's value alone, several as a JSON object of shown values."""
    if len(names) == 1:
        return shown(values.get(names[0]))
    return json.dumps({name: shown(values.get(name)) for name in names}, ensure_ascii=False)
