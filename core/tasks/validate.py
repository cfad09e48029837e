"""Checking and cleaning a table before it becomes a task; guessing its text and label columns.

Every bad input raises :class:`core.config.errors.DataError` with what went wrong and how to fix it;
problems that only lose a few rows (or that a person should see) come back from :func:`validate_table`
as warnings. Labels that differ only in case, spacing or invisible characters are one class to a
reader and to the answer parser, so a table holding both spellings is an error unless they are merged.
"""

from __future__ import annotations

import pandas as pd

from core.config.errors import DataError
from core.tasks.labels import DROP, MERGE, aligned, describe, lookalike_groups, merged
from core.tasks.text import is_missing_marker, listing

MAX_LABELS = 1_000  # a prompt listing more classes than this is not a classification task for an LM
MERGE_HINT = MERGE.hint
READ_NOTES = "read_notes"  # df.attrs key: what read_table changed while reading (shown as warnings)
SOURCE_NAME = "source_name"  # df.attrs key: the file read_table read the table from (named in messages)


def _require_columns(df: pd.DataFrame, columns: list[str], what: str = "") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        what = what or (f"The table {source_name(df)}" if source_name(df) else "The table")
        raise DataError(
            f"{what} has no column {' or '.join(repr(c) for c in missing)}. "
            f"Its columns are: {listing(map(str, df.columns), 20)}.",
            "Pick the text and label columns from that list (names are case-sensitive).",
        )


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    col = df[name]
    if isinstance(col, pd.DataFrame):  # read_table de-duplicates names; a hand-made frame may not
        raise DataError(f"The table has {col.shape[1]} columns named {name!r}.", "Rename them so each name is unique.")
    return col


def _texts(series: pd.Series) -> pd.Series:
    """Text cells as stripped strings; missing cells become ""."""
    return series.astype("string").str.strip().fillna("").astype(str)


def _labels(series: pd.Series) -> pd.Series:
    """Label cells as stripped strings; missing or blank cells become NA. Whole floats lose their ".0"."""
    if pd.api.types.is_float_dtype(series):
        finite = series.dropna()
        if ((finite % 1 == 0) & (finite.abs() < 2**53)).all():
            series = series.astype("Int64")
    out = series.astype("string").str.strip()
    return out.mask(out.eq("").fillna(False)).astype(str)


def _markers(labels: pd.Series) -> list[str]:
    """The distinct labels that are missing-value markers (checked once per distinct value, not per row)."""
    return [v for v in labels.dropna().unique() if is_missing_marker(v)]


def source_name(df: pd.DataFrame) -> str:
    """The file ``df`` was read from, as :func:`core.tasks.read_table` named it ("" for a table made in code)."""
    return str(df.attrs.get(SOURCE_NAME) or "")


def _where(column: str, source: str, word: str = "column") -> str:
    """``column 'label' of data/test.csv``: the column and the file it was read from."""
    return f"{word} {column!r}" + (f" of {source}" if source else "")


def _lookalikes(labels: pd.Series, merge: bool, column: str, source: str) -> tuple[pd.Series, list[str]]:
    """``labels`` with lookalikes merged (``merge``), and a note; DataError for unmerged labels a reader cannot
    tell apart; a counted warning for unmerged numbers spelled more than one way."""
    groups = lookalike_groups(labels)
    if not groups:
        return labels, []
    rows = sum(g.others for g in groups)
    if merge:
        return merged(labels, groups), [
            f"Merged {len(groups):,} label(s) spelled more than one way in {_where(column, source)} ({rows:,} "
            f"row(s) respelled): {describe(groups, merged_into=True)}."]
    if clashes := [g for g in groups if g.clash]:
        raise DataError(
            f"{_where(column, source, 'Column')} has {len(clashes):,} label(s) spelled more than one way "
            f"(differing only in case, spaces, invisible or right-to-left characters): {describe(clashes)}.",
            f"Each spelling would be scored as a class of its own although no answer can tell them apart. Fix the "
            f"spellings in the file, or {MERGE.hint} (each group becomes its most frequent spelling).",
        )
    return labels, [
        f"{_where(column, source, 'Column')} has {len(groups):,} label(s) spelled as more than one number "
        f"({rows:,} row(s) in the less frequent spellings): {describe(groups)}. Each spelling is a class of its "
        f"own; if they are one class, {MERGE.hint}."]


def prepared_labels(
    series: pd.Series, *, merge_similar_labels: bool = False, drop_missing_labels: bool = False,
    column: str = "label", source: str = "",
) -> tuple[pd.Series, list[str]]:
    """The label column as :func:`clean_table` keeps it, and notes on what was merged, dropped or looks alike.

    Raises DataError (naming ``source``, the file) if labels collide after case / space / Unicode / bidi
    normalisation and ``merge_similar_labels`` is off.
    """
    labels = _labels(series)
    notes: list[str] = []
    if drop_missing_labels:
        marked = labels.isin(_markers(labels))
        if n := int(marked.sum()):
            notes.append(f"{n:,} row(s) labelled with a missing-value marker "
                         f"({listing(sorted(labels[marked].unique()))}) will be dropped.")
            labels = labels.mask(marked)
    labels, found = _lookalikes(labels, merge_similar_labels, column, source)
    return labels, notes + found


def align_labels(series: pd.Series, labels: tuple[str, ...]) -> pd.Series:
    """``series`` with each value that looks like one of ``labels`` (see :mod:`core.tasks.labels`) spelled as in
    ``labels``."""
    return aligned(series, labels)


def _marker_warning(labels: pd.Series, column: str) -> list[str]:
    """A warning about labels that are missing-value markers, kept as classes (the drop option is off)."""
    markers = labels[labels.isin(_markers(labels))]
    if not len(markers):
        return []
    counts = markers.value_counts()
    return [f"{len(markers):,} row(s) in {column!r} are labelled with a missing-value marker: "
            f"{listing((f'{k!r} ({v})' for k, v in counts.items()), quote=False)}. They are kept as classes of their "
            f"own; if they mean 'no label', {DROP.hint}."]


def validate_table(
    df: pd.DataFrame,
    *,
    text_column: str,
    label_column: str,
    min_labels: int = 2,
    max_text_chars: int = 20_000,
    merge_similar_labels: bool = False,
    drop_missing_labels: bool = False,
) -> list[str]:
    """Raise DataError if ``df`` cannot be a classification task; return warnings about rows that will be lost
    and labels a person should look at."""
    _require_columns(df, [text_column, label_column])
    if text_column == label_column:
        raise DataError(f"The text and label columns are the same ({text_column!r}).", "Pick two different columns.")
    warnings: list[str] = list(df.attrs.get(READ_NOTES, []))
    source = source_name(df)
    texts = _texts(_column(df, text_column))
    labels, notes = prepared_labels(_column(df, label_column), merge_similar_labels=merge_similar_labels,
                                    drop_missing_labels=drop_missing_labels, column=label_column, source=source)
    empty = texts == ""
    if empty.all():
        raise DataError(
            f"Every cell of the text column {text_column!r}{f' of {source}' if source else ''} is empty.",
            "Pick the column that holds the texts."
        )
    usable = labels[~empty].dropna()
    n_labels = _check_label_count(usable, label_column, source, min_labels)
    warnings += notes
    if not drop_missing_labels:
        warnings += _marker_warning(usable, label_column)
    warnings += _row_warnings(texts, labels, (text_column, label_column), max_text_chars)
    if n_labels > 50:
        warnings.append(f"{label_column!r} has {n_labels:,} distinct labels: is it really the label column?")
    return warnings


def _check_label_count(usable: pd.Series, label_column: str, source: str, min_labels: int) -> int:
    """The number of distinct labels of the usable rows; raise DataError when they are too few to classify, or so
    many that the column looks like ids or free text."""
    n_labels = usable.nunique()
    if n_labels < min_labels:
        raise DataError(
            f"{_where(label_column, source, 'Column')} has {n_labels} distinct label(s) "
            f"({listing(sorted(usable.unique())) or 'none'}); "
            f"a classifier needs at least {min_labels}.",
            "Pick the column that holds the classes, or add rows for the other labels.",
        )
    if n_labels > MAX_LABELS or (n_labels > 50 and n_labels > 0.9 * len(usable)):
        raise DataError(
            f"{_where(label_column, source, 'Column')} has {n_labels:,} distinct labels for {len(usable):,} rows "
            f"({listing(usable.unique())}): it looks like an id or free-text column, not classes.",
            f"Pick the column that holds the classes (a task may have at most {MAX_LABELS:,} labels, "
            "each with several rows).",
        )
    return n_labels


def _row_warnings(texts: pd.Series, labels: pd.Series, columns: tuple[str, str], max_text_chars: int) -> list[str]:
    """Warnings about rows that will be dropped (empty text, no label, duplicates), very long texts and texts with
    more than one label (``columns``: the text and label column's names)."""
    text_column, label_column = columns
    warnings, empty = [], texts == ""
    if n_empty := int(empty.sum()):
        warnings.append(f"{n_empty:,} row(s) have an empty text in {text_column!r}; they will be dropped.")
    if n_missing := int(labels.isna().sum()):
        warnings.append(f"{n_missing:,} row(s) have no label in {label_column!r}; they will be dropped.")
    if n_huge := int((texts.str.len() > max_text_chars).sum()):
        warnings.append(f"{n_huge:,} text(s) are longer than {max_text_chars:,} characters; they are kept but cost "
                        "many tokens per call.")
    pairs = pd.DataFrame({"t": texts, "l": labels})[~empty & labels.notna()]
    if n_dup := int(pairs.duplicated().sum()):
        warnings.append(f"{n_dup:,} duplicate row(s) (same text and label); the copies will be dropped.")
    conflicting = pairs.drop_duplicates().groupby("t")["l"].nunique()
    if n_conflict := int((conflicting > 1).sum()):
        warnings.append(f"{n_conflict:,} text(s) appear with more than one label; check the labels.")
    return warnings


def clean_table(
    df: pd.DataFrame,
    *,
    text_column: str,
    label_column: str,
    merge_similar_labels: bool = False,
    drop_missing_labels: bool = False,
) -> pd.DataFrame:
    """Stripped texts and string labels; rows with an empty text, no label or a duplicate (text, label) dropped.

    Labels spelled more than one way raise DataError, or are merged into their most frequent spelling with
    ``merge_similar_labels``; ``drop_missing_labels`` drops rows labelled "NaN", "null", "N/A"...
    """
    _require_columns(df, [text_column, label_column])
    out = df.copy()
    out[text_column] = _texts(_column(df, text_column))
    out[label_column], _ = prepared_labels(_column(df, label_column), merge_similar_labels=merge_similar_labels,
                                           drop_missing_labels=drop_missing_labels, column=label_column,
                                           source=source_name(df))
    out = out[(out[text_column] != "") & out[label_column].notna()]
    out = out.drop_duplicates(subset=[text_column, label_column])
    out[text_column] = out[text_column].astype(str)
    out[label_column] = out[label_column].astype(str)
    out = out.reset_index(drop=True)
    out.attrs = dict(df.attrs)  # the file's name, for messages about the cleaned table
    return out


def label_counts(df: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """Rows per label: columns ``label``, ``count``, sorted by label (for a distribution chart)."""
    _require_columns(df, [label_column])
    counts = df[label_column].dropna().astype(str).value_counts()
    out = pd.DataFrame({"label": counts.index.astype(str), "count": counts.to_numpy(dtype="int64")})
    return out.sort_values("label").reset_index(drop=True)


TEXT_COLUMN_NAMES = ("text", "description", "sentence", "abstract", "content", "document", "body", "input")
LABEL_COLUMN_NAMES = ("label", "target", "class", "category", "labels", "y", "output")


def _distinct(series: pd.Series) -> int:
    try:
        return int(series.nunique())
    except TypeError:  # unhashable cells (lists, dicts): never a label column
        return len(series) + 1


def guess_columns(df: pd.DataFrame) -> tuple[str, str]:
    """A likely (text column, label column) of an uploaded table: by name, else longest text / fewest values."""
    columns = [str(c) for c in df.columns]
    lower = {c.lower(): c for c in columns}
    text = next((lower[n] for n in TEXT_COLUMN_NAMES if n in lower), None)
    label = next((lower[n] for n in LABEL_COLUMN_NAMES if n in lower and lower[n] != text), None)
    if text is None:
        lengths = {c: df.iloc[:, i].astype(str).str.len().mean() for i, c in enumerate(columns) if c != label}
        text = max(lengths, key=lambda c: (lengths[c] if lengths[c] == lengths[c] else -1)) if lengths else columns[0]
    if label is None:
        rest = [i for i, c in enumerate(columns) if c != text] or list(range(len(columns)))
        label = columns[min(rest, key=lambda i: _distinct(df.iloc[:, i]))]
    return text, label
