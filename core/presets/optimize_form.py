"""The Optimize page's form as plain data: what a profile keeps of it and what a URL carries (``optimize_form``).

One table, :data:`FORM`: each field's default (which also gives its type), its URL parameter and the values it may
take. A value that does not fit is left out on its own (the page then shows that field's default), never the whole
form. Only values that differ from the default go into a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

MAX_TEXT = 4000  # an instruction typed on the page; a longer one stays in the session
# Named here, not imported: the profile is read on every page, before DSPy is loaded (core.optimize and
# core.program import it). tests/ui/test_state_reload.py checks each equals its source.
MAX_SEEDS = 20  # core.jobs.repeats.MAX_SEEDS
OPTIMIZERS = ("gepa", "miprov2", "fewshot", "own")  # core.optimize.OPTIMIZERS
STARTS = ("bare", "described", "own")  # core.program.program.STARTS
SELECTORS = ("round_robin", "all")  # core.optimize.config.COMPONENT_SELECTORS

Value = str | int | float | bool


@dataclass(frozen=True)
class FormField:
    default: Value
    param: str  # its URL parameter
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    def check(self, value: Any) -> Value:
        """``value`` as this field's type, or ValueError."""
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expects true or false, got {value!r}")
            return value
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expects a number, got {value!r}")
            if kind is int and value != int(value):
                raise ValueError(f"expects a whole number, got {value!r}")
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                raise ValueError(f"{value!r} is outside {self.low}..{self.high}")
            return kind(value)
        if not isinstance(value, str):
            raise ValueError(f"expects text, got {type(value).__name__}")
        if self.choices and value not in self.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"longer than {MAX_TEXT} characters")
        return value


# The form, field -> how it is kept. Each field is the page's widget ``optimize.<field>`` (pages/optimize.py,
# ui/notebook.py).
FORM: dict[str, FormField] = {
    "setup": FormField("own", "setup", ("own", "notebook")),  # your settings, or the original notebook's preset
    "optimizer": FormField("gepa", "optimizer", OPTIMIZERS),
    "budget": FormField("light", "budget", ("light", "medium", "heavy", "custom")),
    "max_calls": FormField(200, "calls", low=1),
    "capped": FormField(False, "capped"),
    "cap": FormField(2.0, "cap", low=0.01),
    "seeds": FormField(1, "seeds", low=1, high=MAX_SEEDS),
    "module": FormField("predict", "module", ("predict", "cot")),
    "feedback": FormField("rule", "feedback", ("rule", "judge")),
    "minibatch": FormField(3, "minibatch", low=1),
    "component_selector": FormField("round_robin", "selector", SELECTORS),
    "threads": FormField(4, "threads", low=1, high=64),
    "seed": FormField(0, "opt_seed", low=0),
    "merge": FormField(True, "opt_merge"),
    "cache": FormField(True, "reuse"),
    "start_program": FormField("described", "start", STARTS),
    "instruction": FormField("", "instruction"),  # the starting instruction (starting program "own")
    "own_instruction": FormField("", "own_prompt"),  # the prompt the optimizer "own" evaluates
}


def clean_form(value: Mapping[str, Any]) -> dict[str, Value]:
    """The fields of ``value`` that fit :data:`FORM` (each checked alone; the others are logged and left out)."""
    kept: dict[str, Value] = {}
    for name, raw in value.items():
        field = FORM.get(name)
        if field is None:
            logger.debug("optimize form: unknown field %r left out", name)
            continue
        try:
            kept[name] = field.check(raw)
        except ValueError as exc:
            logger.warning("optimize form: %s %s (left out)", name, exc)
    return kept


def form_to_query(form: Mapping[str, Any]) -> dict[str, list[str]]:
    """The form's values that differ from their defaults, as URL parameters."""
    out: dict[str, list[str]] = {}
    for name, value in form.items():
        field = FORM.get(name)
        if field is None or value == field.default or (isinstance(value, str) and len(value) > MAX_TEXT):
            continue
        out[field.param] = [("1" if value else "0") if isinstance(value, bool) else str(value)]
    return out


def parse_value(text: str, default: Any) -> Any:
    """A URL value read as the type of ``default`` (a field's default); ValueError when it is not one."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(text)
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def form_from_query(params: Mapping[str, list[str]]) -> tuple[dict[str, Value], list[str]]:
    """The form fields a URL names, and the parameters left out (not readable, or not a value the field takes)."""
    found: dict[str, Any] = {}
    bad: list[str] = []
    for name, field in FORM.items():
        values = [v for v in params.get(field.param, []) if v is not None]
        if not values:
            continue
        try:
            found[name] = field.check(parse_value(values[-1].strip(), field.default))
        except ValueError:
            bad.append(field.param)
    return found, bad


def form_params() -> frozenset[str]:
    return frozenset(f.param for f in FORM.values())
