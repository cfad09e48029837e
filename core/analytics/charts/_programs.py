"""Which program a run evaluated (original or optimized, Predict or CoT …), and how charts draw each kind.

Colour stays the model's; the program kind is a marker symbol on scatter charts and a fill pattern on bars,
so an original and an optimized run of one model (or a Predict and a CoT run) read apart without hovering.
Module names come from the run label ("<model> · <Predict|CoT>[ · optimized]"): analytics never reads
the run table's module table.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_MODULE = "predict"  # runs recorded before the module tag existed
# Marker shape per module (scatter); hollow = original, filled = optimized.
MODULE_SYMBOLS: dict[str, str] = {"predict": "circle", "cot": "diamond"}
OTHER_SYMBOLS: tuple[str, ...] = ("square", "triangle-up", "pentagon", "hexagon", "star")
# Shapes that have an "-x" variant (a degraded run's point is crossed).
CROSSABLE = ("circle", "square", "diamond")
# Bar pattern per module: (original, optimized). The failed segment uses FAILED_PATTERN.
MODULE_PATTERNS: dict[str, tuple[str, str]] = {"predict": ("", "/"), "cot": (".", "x")}
OTHER_PATTERNS: tuple[str, str] = ("|", "+")
FAILED_PATTERN = "-"


class Kind(NamedTuple):
    """A run's program kind: ``program`` ("original" | "optimized"), raw ``module`` and its display ``name``."""

    program: str
    module: str
    name: str

    @property
    def legend(self) -> str:
        """"optimized · CoT", or just "optimized" when the module is not known."""
        return f"{self.program} · {self.name}" if self.name else self.program


def _module_name(label: str, model: str) -> str:
    # "<model> · CoT · optimized" -> "CoT"; an older "<model> · original" has none.
    # Pages may append more (" · capped"): the module is the first part after the model.
    rest = label[len(model) + 3:] if label.startswith(f"{model} · ") else ""
    first = rest.split(" · ")[0]
    return "" if first in ("original", "optimized") else first


def kinds(frame: pd.DataFrame) -> list[Kind]:
    """The program kind of each row of a chart frame (columns label, model; program and module when present)."""
    programs = frame["program"] if "program" in frame else pd.Series("original", index=frame.index)
    modules = frame["module"] if "module" in frame else pd.Series(DEFAULT_MODULE, index=frame.index)
    out = []
    for label, model, program, module in zip(frame["label"], frame["model"], programs, modules, strict=True):
        program = "optimized" if str(program) == "optimized" else "original"
        module = DEFAULT_MODULE if module is None or pd.isna(module) or not str(module) else str(module)
        name = _module_name(str(label), str(model)) or ("" if "module" not in frame else module)
        out.append(Kind(program, module, name))
    return out


def symbol(kind: Kind, others: list[str], degraded: bool = False) -> str:
    """Plotly marker symbol of a kind: the module's shape, hollow for the original program, crossed when degraded."""
    shape = MODULE_SYMBOLS.get(kind.module)
    if shape is None:
        position = others.index(kind.module) if kind.module in others else 0
        shape = OTHER_SYMBOLS[position % len(OTHER_SYMBOLS)]
    if degraded and shape in CROSSABLE:
        shape += "-x"
    return shape + ("-open" if kind.program == "original" else "")


def pattern(kind: Kind) -> str:
    """Bar fill pattern of a kind: none for an original Predict run, stripes for an optimized one, and so on."""
    original, optimized = MODULE_PATTERNS.get(kind.module, OTHER_PATTERNS)
    return optimized if kind.program == "optimized" else original


def other_modules(all_kinds: list[Kind]) -> list[str]:
    """Modules without a fixed shape, so each gets its own one in a stable order."""
    return sorted({k.module for k in all_kinds if k.module not in MODULE_SYMBOLS})
