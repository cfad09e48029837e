"""Tables for tasks beyond classification: check a table against typed input and output columns, clean it, and
build the task (label sets read from the data where the task does not list them).

Every problem names the column and the rows (data rows, 1 = the first row under the header), so a person can
find them in the file: an output column with one distinct value, a JSON cell that does not parse, a number cell that
holds text, a label outside the listed set.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Sequence

import pandas as pd

from core.config.errors import DataError
from core.tasks.fields import InputSpec, OutputSpec, input_from, output_from, split_labels
from core.tasks.model import Task
from core.tasks.text import is_missing_marker, listing
from core.tasks.validate import READ_NOTES, _require_columns, source_name

_NUMBER = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _rows(mask: pd.Series, verb: str = "") -> str:
    """The 1-based data rows where ``mask`` holds, at most 8 named, with ``verb`` agreeing ("hold": "row 3 holds",
    "rows 3, 7 hold")."""
    rows = [int(i) + 1 for i in mask[mask].index]
    if len(rows) == 1:
        return f"row {rows[0]}" + (f" {verb}s" if verb else "")
    return "rows " + listing(map(str, rows), 8, quote=False) + (f" {verb}" if verb else "")


def _cells(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip().fillna("").astype(str)


def cell_number(text: Any) -> float | None:
    """A cell as a number ("1,234.5" -> 1234.5), or None when it is not one."""
    value = str(text).strip().replace("\u2212", "-")
    if not _NUMBER.match(value):
        return None
    try:
        number = float(value.replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _where(column: str, df: pd.DataFrame) -> str:
    source = source_name(df)
    return f"column {column!r}" + (f" of {source}" if source else "")


def _check_output(df: pd.DataFrame, spec: OutputSpec, usable: pd.Series) -> list[str]:
    """DataError for an output column no metric could use; warnings for rows it will drop."""
    cells = _cells(df[spec.column])
    blank = usable & (cells == "")
    filled = cells[usable & ~blank]
    warnings = [f"{int(blank.sum()):,} row(s) have no {spec.column!r} ({_rows(blank)}): they are kept, and the "
                "expected answer there is empty."] if blank.any() and spec.kind != "text" else []
    if spec.kind in ("label", "text") and filled.nunique() < 2 and len(filled) > 1:
        raise DataError(f"Output {_where(spec.column, df)} holds one value for every row ({filled.iloc[0]!r}).",
                        "A program that always answers it would score 1: pick a column whose answers vary.")
    if spec.kind == "number":
        bad = usable & ~blank & cells.map(lambda c: cell_number(c) is None)
        if bad.any():
            raise DataError(f"Output {_where(spec.column, df)} is a number column but {_rows(bad, 'hold')} text: "
                            f"{listing(cells[bad].unique(), 3)}.", "Fix those cells, or make the output text.")
    if spec.kind == "json":
        bad = usable & ~blank & cells.map(lambda c: not isinstance(_json_object(c), dict))
        if bad.any():
            raise DataError(f"Output {_where(spec.column, df)} is a JSON column but {_rows(bad, 'hold')} no JSON "
                            f"object: {listing(cells[bad].str.slice(0, 60).unique(), 3)}.",
                            'Each cell must be an object such as {"drug": "aspirin", "dose": "10 mg"}.')
    if spec.kind in ("label", "labels") and spec.labels:
        named = filled.map(lambda c: (c,) if spec.kind == "label" else split_labels(c))
        outside = sorted({v for values in named for v in values if v not in spec.labels})
        if outside:
            raise DataError(f"Output {_where(spec.column, df)} names label(s) outside its set: "
                            f"{listing(outside, 5)}.", f"Its labels are {listing(spec.labels, 10)}: add them there.")
    return warnings


def _json_object(cell: str) -> Any:
    try:
        return json.loads(cell)
    except ValueError:
        return None


def with_labels(df: pd.DataFrame, spec: OutputSpec) -> OutputSpec:
    """``spec`` with its label set read from the data when it lists none (label and labels outputs)."""
    if spec.kind not in ("label", "labels") or spec.labels:
        return spec
    cells = _cells(df[spec.column])
    values = cells[cells != ""].map(lambda c: (c,) if spec.kind == "label" else split_labels(c))
    found = tuple(sorted({v for vs in values for v in vs if not is_missing_marker(v)}))
    if len(found) < (2 if spec.kind == "label" else 1):
        raise DataError(f"Output {_where(spec.column, df)} has {len(found)} distinct label(s) "
                        f"({listing(found) or 'none'}); a label output needs at least 2.",
                        "Pick the column that holds the classes, or make the output text.")
    return OutputSpec(**{**spec.__dict__, "labels": found})


def validate_fields(df: pd.DataFrame, inputs: Sequence[InputSpec], outputs: Sequence[OutputSpec]) -> list[str]:
    """Raise DataError when ``df`` cannot hold these fields; warnings about rows that will be dropped."""
    columns = [f.column for f in inputs] + [f.column for f in outputs]
    _require_columns(df, columns)
    if dupes := sorted({c for c in columns if columns.count(c) > 1}):
        raise DataError(f"Column(s) {listing(dupes)} are picked more than once.",
                        "An input column cannot also be an output, nor an output twice.")
    warnings: list[str] = list(df.attrs.get(READ_NOTES, []))
    filled = pd.concat([_cells(df[f.column]) != "" for f in inputs], axis=1).any(axis=1)
    if not filled.any():
        raise DataError(f"Every input cell of {listing([f.column for f in inputs])} is empty.",
                        "Pick the columns that hold the inputs.")
    if (~filled).any():
        warnings.append(f"{int((~filled).sum()):,} row(s) have every input empty ({_rows(~filled)}); they will be "
                        "dropped.")
    for spec in outputs:
        warnings += _check_output(df, spec, filled)
    return warnings


def clean_fields(df: pd.DataFrame, task: Task) -> pd.DataFrame:
    """Stripped string cells of the task's columns; rows whose inputs are all empty, and duplicates, dropped."""
    columns = list(task.columns)
    _require_columns(df, columns)
    out = df.copy()
    for column in columns:
        out[column] = _cells(df[column])
    keep = pd.concat([out[f.column] != "" for f in task.inputs], axis=1).any(axis=1)
    out = out[keep].drop_duplicates(subset=columns).reset_index(drop=True)
    out.attrs = dict(df.attrs)
    return out


def fields_task(df: pd.DataFrame, inputs: Sequence[Any], outputs: Sequence[Any], **task: Any) -> Task:
    """The task for ``df`` read through these fields (checked by :func:`validate_fields`; label sets from the data
    where not listed); ``task``: the rest of :class:`Task` (name, source, metric, judge, instruction, description).
    A plain classification comes back in the classic form."""
    ins = tuple(input_from(v) for v in inputs)
    outs = tuple(output_from(v) for v in outputs)
    validate_fields(df, ins, outs)
    outs = tuple(with_labels(df, spec) for spec in outs)
    return Task(inputs=ins, outputs=outs, **task)
