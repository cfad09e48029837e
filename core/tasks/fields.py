"""A task's fields: the input columns the program reads and the typed output columns it writes.

An output is one of :data:`KINDS` (a label from a set, several labels, free text, a number, a JSON object with named
keys) and is scored by a metric (:data:`DEFAULT_METRIC` by kind unless the field or the task names another). A
classification task (one text column, one label column, exact match) keeps its old, field-less form in
:class:`core.tasks.model.Task`; these specs describe every other task.
"""

from __future__ import annotations

import json
import keyword
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Literal

from core.config.errors import ConfigError

FieldKind = Literal["label", "labels", "text", "number", "json"]

# The kinds of output: the one table the signature, the scorers, the Task page and the CLI read.
KINDS: dict[str, str] = {
    "label": "one label from a set (classification)",
    "labels": "several labels from a set (multi-label); a cell holds a JSON list or labels separated by ; or |",
    "text": "free text",
    "number": "a number",
    "json": "a JSON object with named keys",
}
DEFAULT_METRIC: dict[str, str] = {"label": "exact", "labels": "setf1", "text": "f1", "number": "numeric",
                                  "json": "json"}

# Field names that would clash with dspy.Signature / pydantic attributes.
RESERVED_FIELDS = frozenset({"instructions", "signature", "demos", "fields", "input_fields", "output_fields",
                             "model_config", "model_fields", "schema", "json", "dict", "copy"})


def identifier(name: str, fallback: str) -> str:
    """A column name as a Python identifier (a DSPy field name): ASCII, lower case, never a keyword."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    ident = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_name).strip("_").lower() or fallback
    if ident[0].isdigit():
        ident = f"col_{ident}"
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident) or ident in RESERVED_FIELDS:
        ident = f"{ident}_"
    return ident


def split_labels(cell: Any) -> tuple[str, ...]:
    """The labels a multi-label cell holds: a JSON list, or labels separated by ``;`` or ``|`` (blank: none)."""
    if isinstance(cell, (list, tuple, set)):
        return tuple(str(v).strip() for v in cell if str(v).strip())
    text = "" if cell is None else str(cell).strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except ValueError:
            values = None
        if isinstance(values, list):
            return tuple(str(v).strip() for v in values if str(v).strip())
    return tuple(part.strip() for part in re.split(r"[;|]", text) if part.strip())


def check_field_name(field_name: str, column: str) -> None:
    """ConfigError unless ``field_name`` ("" or a program's field) can be a DSPy field name."""
    if field_name and (not field_name.isidentifier() or keyword.iskeyword(field_name)
                       or field_name in RESERVED_FIELDS):
        raise ConfigError(f"Column {column!r} is mapped to {field_name!r}, which cannot be a DSPy field name.",
                          "Name the program's field as its signature does: letters, digits and _.")


@dataclass(frozen=True)
class InputSpec:
    """One input column and what it holds (the description goes into the signature)."""

    column: str
    description: str = ""
    field: str = ""  # the program's field this column feeds ("" = the column's name as an identifier)

    def __post_init__(self) -> None:
        check_field_name(self.field, self.column)

    @property
    def name(self) -> str:
        return self.field or identifier(self.column, "text")

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "description": self.description} | ({"field": self.field} if self.field
                                                                            else {})


@dataclass(frozen=True)
class OutputSpec:
    """One output column: its kind, its label set (label, labels) or keys (json), its metric and weight."""

    column: str
    kind: FieldKind = "text"
    labels: tuple[str, ...] = ()  # empty until read from the data (core.tasks.field_tables.with_labels)
    keys: tuple[str, ...] = ()
    description: str = ""
    weight: float = 1.0
    metric: str = ""  # "" = DEFAULT_METRIC[kind]; else a field metric name, e.g. "f1", "numeric:0.01"
    field: str = ""  # the program's output field this column holds the gold value of ("" = the column's name)

    def __post_init__(self) -> None:
        check_field_name(self.field, self.column)
        object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
        object.__setattr__(self, "keys", tuple(str(v) for v in self.keys))
        object.__setattr__(self, "weight", float(self.weight))
        if self.kind not in KINDS:
            raise ConfigError(f"Output {self.column!r} has unknown kind {self.kind!r}.",
                              f"Use one of: {', '.join(KINDS)}.")
        if self.kind == "label" and len(self.labels) == 1:
            raise ConfigError(f"Output {self.column!r} has one label ({self.labels[0]!r}).",
                              "A label output needs at least 2 labels (none: read them from the data).")
        if not self.weight >= 0:
            raise ConfigError(f"Output {self.column!r} has weight {self.weight!r}.", "Weights are 0 or more.")

    @property
    def name(self) -> str:
        return self.field or identifier(self.column, "answer")

    @property
    def metric_name(self) -> str:
        return self.metric or DEFAULT_METRIC[self.kind]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "kind": self.kind}
        for key, value, empty in (("labels", list(self.labels), []), ("keys", list(self.keys), []),
                                  ("description", self.description, ""), ("weight", self.weight, 1.0),
                                  ("metric", self.metric, ""), ("field", self.field, "")):
            if value != empty:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OutputSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class JudgeSpec:
    """An LLM judge: the rubric it scores by, its short name (charts say "judge: <name>") and the catalog model."""

    rubric: str
    name: str = "rubric"
    model: str = ""  # "" = the run's reflection model
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not str(self.rubric).strip():
            raise ConfigError("The judge has no rubric.", "Write what a good answer is, and what earns 0 and 1.")

    def to_dict(self) -> dict[str, Any]:
        return {"rubric": self.rubric, "name": self.name, "model": self.model}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JudgeSpec":
        return cls(**{k: v for k, v in d.items() if k in ("rubric", "name", "model")})


def input_from(value: Any) -> InputSpec:
    if isinstance(value, InputSpec):
        return value
    if isinstance(value, str):
        return InputSpec(value)
    return InputSpec(**{k: v for k, v in dict(value).items() if k in ("column", "description", "field")})


def output_from(value: Any) -> OutputSpec:
    return value if isinstance(value, OutputSpec) else OutputSpec.from_dict(dict(value))
