"""Labels that look alike, and the two label options (merge lookalikes, drop missing-value markers) named the same
way on every surface: the Task page's checkbox, the command line's flag and the TaskRef field.

Two spellings look alike when a reader cannot tell them apart (:func:`core.tasks.text.label_key`: case, spacing,
Unicode compatibility forms, invisible characters, right-to-left overrides) or when they spell the same number
(``1`` / ``1.0`` / ``01`` / ``+1``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pandas as pd

from core.tasks.text import label_key, visible


@dataclass(frozen=True)
class LabelOption:
    """One label option: its TaskRef field, the Task page's checkbox and the command line's flag."""

    field: str  # TaskRef field
    box: str  # the Task page's checkbox
    flag: str  # the command line's flag
    help: str

    @property
    def hint(self) -> str:
        """How to turn the option on, in the words of both surfaces."""
        return f"tick '{self.box}' on the Task page, or pass {self.flag} on the command line"


MERGE = LabelOption("merge_similar_labels", "Merge lookalike labels", "--merge-labels",
                    "merge labels that look alike ('Positive' / 'POSITIVE', invisible or right-to-left characters, "
                    "1 / 1.0 / 01) into their most frequent spelling")
DROP = LabelOption("drop_missing_labels", "Drop rows labelled NaN, null, N/A…", "--drop-missing",
                   "drop rows whose label is a missing-value marker (NA, N/A, NaN, null, None, -, empty)")
LABEL_OPTIONS: dict[str, LabelOption] = {MERGE.field: MERGE, DROP.field: DROP}

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?")


def number_key(key: str) -> str | None:
    """The number a :func:`label_key` spells, in one canonical form ("01", "1.0", "+1" -> "1"), or None."""
    if len(key) > 40 or not _NUMBER.fullmatch(key):
        return None
    try:
        value = Decimal(key)
    except InvalidOperation:
        return None
    return "0" if value == 0 else str(value.normalize())


def lookalike_key(value: object) -> str:
    """What two labels that look alike share: their :func:`label_key`, or the number it spells."""
    key = label_key(value)
    return number_key(key) or key


def spelling(label: str) -> str:
    """A label as messages show it: its repr (invisible characters escaped), then what a screen shows."""
    shown = visible(label)
    text = repr(label) if len(label) <= 60 else repr(label[:57] + "...")
    return text + (f" shown as {shown!r}" if shown != label else "")


@dataclass(frozen=True)
class Lookalikes:
    """Distinct labels of one table that look alike, as (label, rows) pairs, most rows first."""

    spellings: tuple[tuple[str, int], ...]

    @property
    def target(self) -> str:
        """The spelling a merge keeps: the most frequent one."""
        return self.spellings[0][0]

    @property
    def clash(self) -> bool:
        """True when a reader (and the answer parser) cannot tell two of them apart, not only their number."""
        return len({label_key(label) for label, _ in self.spellings}) < len(self.spellings)

    @property
    def others(self) -> int:
        """Rows in the less frequent spellings (the rows a merge changes)."""
        return sum(n for _, n in self.spellings[1:])

    def listed(self) -> str:
        """``'neg' (40 rows) and 'neg\\u202e' shown as 'neg' (3 rows)``: at most four spellings."""
        parts = [f"{spelling(label)} ({n:,} row{'' if n == 1 else 's'})" for label, n in self.spellings[:4]]
        more = f" (and {len(self.spellings) - 4:,} more)" if len(self.spellings) > 4 else ""
        return f"{', '.join(parts[:-1])} and {parts[-1]}{more}"

    def text(self) -> str:
        """``labels 'neg' (40 rows) and 'neg\\u202e' shown as 'neg' (3 rows) look alike``."""
        return f"labels {self.listed()} look alike"


def lookalike_groups(labels: pd.Series) -> list[Lookalikes]:
    """The groups of distinct labels in ``labels`` that look alike, the group with the most rows first."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for label, n in labels.dropna().value_counts().items():
        groups.setdefault(lookalike_key(label), []).append((str(label), int(n)))
    found = [Lookalikes(tuple(sorted(g, key=lambda p: (-p[1], p[0])))) for g in groups.values() if len(g) > 1]
    return sorted(found, key=lambda g: -sum(n for _, n in g.spellings))


def describe(groups: list[Lookalikes], limit: int = 3, *, merged_into: bool = False) -> str:
    """The groups for a message, at most ``limit`` of them (``merged_into``: each with the spelling it became)."""
    shown = [f"{g.listed()} → {g.target!r}" if merged_into else g.text() for g in groups[:limit]]
    return "; ".join(shown) + (f"; … and {len(groups) - limit:,} more" if len(groups) > limit else "")


def merged(labels: pd.Series, groups: list[Lookalikes]) -> pd.Series:
    """Each spelling in a group replaced by the group's most frequent one."""
    mapping = {label: g.target for g in groups for label, _ in g.spellings[1:]}
    return labels.replace(mapping) if mapping else labels


def aligned(series: pd.Series, labels: tuple[str, ...]) -> pd.Series:
    """``series`` with each value that looks like one of ``labels`` spelled as in ``labels``."""
    spelled = {lookalike_key(label): label for label in labels}
    return series.map(lambda v: spelled.get(lookalike_key(v), v) if isinstance(v, str) else v)
