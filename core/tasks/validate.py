"""Checking and cleaning a table before it becomes a task; guessing its text and label columns.

Every bad input raises :class:`core.errors.DataError` with what went wrong and how to fix it;
problems that only lose a few rows come back from :func:`validate_table` as warnings.
"""

from __future__ import annotations

import pandas as pd

from core.errors import DataError


def _require_columns(df: pd.DataFrame, columns: list[str], what: str = "The table") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        available = ", ".join(repr(str(c)) for c in df.columns)
        raise DataError(
            f"{what} has no column {' or '.join(repr(c) for c in missing)}. Its columns are: {available}.",
            "Pick the text and label columns from that list (names are case-sensitive).",
        )


def _texts(series: pd.Series) -> pd.Series:
    """Text cells as stripped strings; missing cells become ""."""
    return series.astype("string").str.strip().fillna("").astype(str)


def _labels(series: pd.Series) -> pd.Series:
    """Label cells as stripped strings; missing or blank cells become NA. Whole floats lose their ".0"."""
    if pd.api.types.is_float_dtype(series) and (series.dropna() % 1 == 0).all():
        series = series.astype("Int64")
    out = series.astype("string").str.strip()
    return out.mask(out.eq("").fillna(False)).astype(str)


def validate_table(
    df: pd.DataFrame, *, text_column: str, label_column: str, min_labels: int = 2, max_text_chars: int = 20_000
) -> list[str]:
    """Raise DataError if ``df`` cannot be a classification task; return warnings about rows that will be lost."""
    _require_columns(df, [text_column, label_column])
    if text_column == label_column:
        raise DataError(f"The text and label columns are the same ({text_column!r}).", "Pick two different columns.")
    texts, labels = _texts(df[text_column]), _labels(df[label_column])
    empty = texts == ""
    if empty.all():
        raise DataError(
            f"Every cell of the text column {text_column!r} is empty.", "Pick the column that holds the texts."
        )
    usable = labels[~empty].dropna()
    n_labels = usable.nunique()
    if n_labels < min_labels:
        found = ", ".join(repr(v) for v in sorted(usable.unique())[:5]) or "none"
        raise DataError(
            f"Column {label_column!r} has {n_labels} distinct label(s) ({found}); a classifier needs at least {min_labels}.",
            "Pick the column that holds the classes, or add rows for the other labels.",
        )

    warnings: list[str] = []
    if n_empty := int(empty.sum()):
        warnings.append(f"{n_empty} row(s) have an empty text in {text_column!r}; they will be dropped.")
    if n_missing := int(labels.isna().sum()):
        warnings.append(f"{n_missing} row(s) have no label in {label_column!r}; they will be dropped.")
    if n_huge := int((texts.str.len() > max_text_chars).sum()):
        warnings.append(
            f"{n_huge} text(s) are longer than {max_text_chars:,} characters; they are kept but cost many tokens per call."
        )
    pairs = pd.DataFrame({"t": texts, "l": labels})[~empty & labels.notna()]
    if n_dup := int(pairs.duplicated().sum()):
        warnings.append(f"{n_dup} duplicate row(s) (same text and label); the copies will be dropped.")
    conflicting = pairs.drop_duplicates().groupby("t")["l"].nunique()
    if n_conflict := int((conflicting > 1).sum()):
        warnings.append(f"{n_conflict} text(s) appear with more than one label; check the labels.")
    if n_labels > 50:
        warnings.append(f"{label_column!r} has {n_labels} distinct labels: is it really the label column?")
    return warnings


def clean_table(df: pd.DataFrame, *, text_column: str, label_column: str) -> pd.DataFrame:
    """Stripped texts and string labels; rows with an empty text, no label or a duplicate (text, label) dropped."""
    _require_columns(df, [text_column, label_column])
    out = df.copy()
    out[text_column] = _texts(df[text_column])
    out[label_column] = _labels(df[label_column])
    out = out[(out[text_column] != "") & out[label_column].notna()]
    out = out.drop_duplicates(subset=[text_column, label_column])
    out[text_column] = out[text_column].astype(str)
    out[label_column] = out[label_column].astype(str)
    return out.reset_index(drop=True)


def label_counts(df: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Rows per label: columns ``label``, ``count``, sorted by label (for a distribution chart)."""
    _require_columns(df, [label_column])
    counts = df[label_column].dropna().astype(str).value_counts()
    out = pd.DataFrame({"label": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
    return out.sort_values("label").reset_index(drop=True)

TEXT_COLUMN_NAMES = ("text", "description", "sentence", "abstract", "content", "document", "body", "input")
LABEL_COLUMN_NAMES = ("label", "target", "class", "category", "labels", "y", "output")


def guess_columns(df: pd.DataFrame) -> tuple[str, str]:
    """A likely (text column, label column) of an uploaded table: by name, else longest text / fewest values."""
    columns = [str(c) for c in df.columns]
    lower = {c.lower(): c for c in columns}
    text = next((lower[n] for n in TEXT_COLUMN_NAMES if n in lower), None)
    label = next((lower[n] for n in LABEL_COLUMN_NAMES if n in lower and lower[n] != text), None)
    if text is None:
        lengths = {c: df[c].astype(str).str.len().mean() for c in columns if c != label}
        text = max(lengths, key=lengths.__getitem__) if lengths else columns[0]
    if label is None:
        rest = [c for c in columns if c != text] or columns
        label = min(rest, key=lambda c: df[c].nunique())
    return text, label
