"""Tables written for people: CSV files a spreadsheet may open, with formula cells neutralised.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a formula by Excel,
LibreOffice and Google Sheets (CSV injection: ``=HYPERLINK(...)`` in a model's answer or a task's text).
Such cells get a leading ``'``, which spreadsheets show as text. Plain numbers (``-1``, ``+0.5``) are left
alone: a spreadsheet reads them as numbers, never as formulas.
"""

from __future__ import annotations

import logging
import re
from typing import Callable

import pandas as pd

logger = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _is_formula(value: str) -> bool:
    # A cell already starting with "'" before a formula gets one more, so restore_cell is an exact inverse.
    if value.startswith("'"):
        return _is_formula(value[1:])
    return value.startswith(FORMULA_STARTS) and not _NUMBER.match(value)


def neutralize_cell(value: object) -> object:
    """``value`` with a leading ``'`` if a spreadsheet would run it as a formula; other values unchanged."""
    return "'" + value if isinstance(value, str) and _is_formula(value) else value


def restore_cell(value: object) -> object:
    """The inverse of :func:`neutralize_cell`: what the cell held before it was written."""
    if isinstance(value, str) and value.startswith("'") and _is_formula(value[1:]):
        return value[1:]
    return value


def _texts(values: pd.Index | pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def _mapped_index(index: pd.Index, cell: Callable[[object], object]) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        return index.set_levels([_mapped_index(level, cell) for level in index.levels])
    return pd.Index([cell(v) for v in index], name=cell(index.name)) if _texts(index) else index


def _mapped(df: pd.DataFrame, cell: Callable[[object], object]) -> pd.DataFrame:
    out = df.copy()
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        if _texts(col):
            out.isetitem(i, col.map(cell, na_action="ignore").astype(col.dtype))
    out.columns = _mapped_index(out.columns, cell)
    out.index = _mapped_index(out.index, cell)
    return out


def neutralize_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` safe to open in a spreadsheet: every formula-like text cell, column name and index
    label gets a leading ``'``. Numbers, booleans and missing values are unchanged; ``df`` is not modified."""
    return _mapped(df, neutralize_cell)


def restore_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """The table :func:`neutralize_formulas` was given, from what it returned (for reading an export back)."""
    return _mapped(df, restore_cell)
