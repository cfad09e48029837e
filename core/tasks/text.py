"""Text helpers the task modules share: how two labels compare (:func:`label_key`), which labels are
missing-value markers, and capped listings so no message grows with the size of a table."""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

# What a spreadsheet or pandas writes for "no value"; compared after strip + casefold.
MISSING_MARKERS = frozenset({"", "nan", "null", "none", "n/a", "na", "-", "--", "?", "#n/a", "nil", "<na>", "missing"})

# Typographic quotes a model (or a word processor) puts where the file has ASCII ones.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"'})
_SPACE = re.compile(r"\s+")

# Bidi controls that open a run (closed by PDF U+202C: embeddings and overrides; by PDI U+2069: isolates).
_RLO = "\u202e"
_EMBEDS = frozenset("\u202a\u202b\u202d\u202e")
_ISOLATES = frozenset("\u2066\u2067\u2068")


def _close(stack: list[tuple[str, list[str]]]) -> None:
    kind, parts = stack.pop()  # a run closed inside another is one unit of it: an override does not reorder it
    stack[-1][1].append("".join(reversed(parts) if kind == _RLO else parts))


def shown_as(value: str) -> str:
    """``value`` in the order a screen shows it: the characters under a right-to-left override (U+202E) reversed,
    so ``"\\u202egen"`` is shown as "neg". Bidi controls are left out; other invisible characters are kept."""
    if not any(ch in _EMBEDS or ch in _ISOLATES or ch in "\u202c\u2069" for ch in value):
        return value
    stack: list[tuple[str, list[str]]] = [("", [])]
    for ch in value:
        if ch in _EMBEDS or ch in _ISOLATES:
            stack.append((ch, []))
        elif ch == "\u202c":  # PDF closes the innermost embedding or override, not an isolate
            if len(stack) > 1 and stack[-1][0] in _EMBEDS:
                _close(stack)
        elif ch == "\u2069":  # PDI closes the innermost isolate and everything opened inside it
            if any(kind in _ISOLATES for kind, _ in stack):
                while stack[-1][0] not in _ISOLATES:
                    _close(stack)
                _close(stack)
        else:
            stack[-1][1].append(ch)
    while len(stack) > 1:
        _close(stack)
    return "".join(stack[0][1])


def visible(value: str) -> str:
    """What a reader sees of ``value``: :func:`shown_as` without invisible (format) characters."""
    return "".join(ch for ch in shown_as(value) if unicodedata.category(ch) != "Cf")


def label_key(value: object) -> str:
    """What a label is once case, spacing, Unicode compatibility forms, invisible characters and bidi overrides are
    ignored.

    Two labels with the same key are the same class to a reader (and to the answer parser), so a task may
    not hold both.
    """
    # Format characters (zero-width space/joiners, BOM, soft hyphen, bidi marks) are invisible; text under a
    # right-to-left override reads backwards.
    text = unicodedata.normalize("NFKC", visible(str(value))).translate(_QUOTES)
    return _SPACE.sub(" ", text).strip().casefold()


def is_missing_marker(value: object) -> bool:
    """True for "NaN", "null", "None", "N/A", "NA", "-", "" and similar spellings of no value."""
    return label_key(value) in MISSING_MARKERS


def listing(items: Iterable[object], limit: int = 5, *, sep: str = ", ", quote: bool = True) -> str:
    """``items`` joined for a message, at most ``limit`` of them, then "… and N more"."""
    shown: list[str] = []
    extra = 0
    for item in items:
        if len(shown) < limit:
            text = repr(item) if quote else str(item)
            shown.append(text if len(text) <= 80 else text[:77] + "...")
        else:
            extra += 1
    return sep.join(shown) + (f" … and {extra:,} more" if extra else "")
