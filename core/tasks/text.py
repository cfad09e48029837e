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


def label_key(value: object) -> str:
    """What a label is once case, spacing, Unicode compatibility forms and invisible characters are ignored.

    Two labels with the same key are the same class to a reader (and to the answer parser), so a task may
    not hold both.
    """
    text = unicodedata.normalize("NFKC", str(value)).translate(_QUOTES)
    # Format characters (zero-width space/joiners, BOM, soft hyphen, bidi marks) are invisible.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
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
