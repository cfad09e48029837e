"""Which optimizer made a run, as the run table reads it: the optimizer table (core.optimize.optimizers.OPTIMIZERS)
is lent here when it loads (tracking sits below optimize, so it cannot import it). Its entries give ``label``,
``reflection_role`` ("" when it calls no second model) and ``instruction_needed`` (it evaluates the prompt given).
A name the table lacks reads as itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OPTIMIZERS: Mapping[str, Any] = {}


def use_optimizers(table: Mapping[str, Any]) -> None:
    """Read optimizers from ``table`` (the optimizer table itself: read at each call, never copied)."""
    global OPTIMIZERS
    OPTIMIZERS = table


def optimizer_label(name: Any) -> str:
    """An optimizer's name as people read it ("GEPA", "MIPROv2"); an unknown one as it is."""
    return getattr(OPTIMIZERS.get(str(name)), "label", str(name))


def evaluates_own_prompt(name: Any) -> bool:
    """Does the optimizer evaluate the prompt given rather than search (your own prompt)?"""
    return bool(getattr(OPTIMIZERS.get(str(name)), "instruction_needed", ""))


def uses_second_model(name: Any) -> bool:
    """Does the optimizer call a second model (a reflection model, a teacher)? An unknown one is taken to."""
    return bool(getattr(OPTIMIZERS.get(str(name)), "reflection_role", True))
