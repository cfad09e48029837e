"""Per-label sampling of train / validation / test splits, and a fingerprint of a split's rows."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd

from core.config.errors import ConfigError, DataError
from core.tasks.labels import lookalike_key, spelling
from core.tasks.model import SAMPLE_METHODS, SampleMethod, SampleSpec, Splits, Task
from core.tasks.text import listing
from core.tasks.validate import MERGE_HINT, _require_columns, source_name

logger = logging.getLogger(__name__)


def _sample(df: pd.DataFrame, label_column: str, n: int, seed: int, what: str = "",
            method: SampleMethod = "one_stream") -> pd.DataFrame:
    """``n`` rows per label, in label order, keeping the original index (so callers can exclude the rows taken);
    ``method`` is an entry of :data:`SAMPLE_METHODS`."""
    _require_columns(df, [label_column])
    if method not in SAMPLE_METHODS:
        raise ConfigError(f"Unknown sampling method {method!r}.", f"Use one of: {', '.join(SAMPLE_METHODS)}.")
    counts = df[label_column].value_counts()
    short = counts[counts < n]
    if len(short):
        listed = listing((f"{label!r} has {int(c)} row(s)" for label, c in short.sort_index().items()), quote=False)
        raise DataError(
            f"Not enough rows{what}: {listed}, fewer than the {n} per label requested.",
            "Lower the per-label size, or add rows for that label.",
        )
    if method == "seed_per_label":
        return pd.concat([group.sample(n=n, random_state=seed) for _, group in df.groupby(label_column)])
    return df.groupby(label_column, group_keys=False).sample(n=n, random_state=seed)


def _test_table(test_df: pd.DataFrame, article: str = "The") -> str:
    """How messages name a separate test table: with its file's name where it has one."""
    return f"{article} test table" + (f" {source_name(test_df)}" if source_name(test_df) else "")


def check_test_labels(labels: tuple[str, ...], test_df: pd.DataFrame, label_column: str) -> list[str]:
    """Warnings about a separate test table's labels: rows whose label is not a task label (left out), and task
    labels with no test rows. Raises DataError when no test row has a task label."""
    _require_columns(test_df, [label_column], what=_test_table(test_df))
    test_labels = test_df[label_column].dropna().astype(str)
    outside = test_labels[~test_labels.isin(labels)].value_counts()
    near = {lookalike_key(label): label for label in labels}
    spelled = [f"{spelling(lab)} (train: {near[lookalike_key(lab)]!r})" for lab in outside.index
               if lookalike_key(lab) in near]
    respell = (f" Some look like a train label: {listing(spelled, 3, quote=False)}; fix them, or "
               f"{MERGE_HINT}.") if spelled else ""
    if len(test_labels) and int(outside.sum()) == len(test_labels):
        raise DataError(
            f"None of the test table's labels appear in train: {_test_table(test_df, 'the')} has "
            f"{listing(outside.index)}; train has {listing(labels)}.{respell}",
            f"The label column {label_column!r} of both files must use the same labels.",
        )
    notes = []
    if len(outside):
        shown = listing((f"{lab!r} ({n})" for lab, n in outside.items()), quote=False)
        notes.append(f"{int(outside.sum()):,} test row(s) have a label that never appears in train: {shown}; "
                     f"they are left out of the test split.{respell}")
    if absent := [label for label in labels if label not in set(test_labels)]:
        notes.append(f"The test table has no rows for {len(absent):,} label(s) ({listing(absent)}); "
                     "the test split leaves them out.")
    return notes


def sample_per_label(df: pd.DataFrame, label_column: str, n: int, seed: int,
                     method: SampleMethod = "one_stream") -> pd.DataFrame:
    """``n`` random rows of each label. ``"one_stream"``: ``groupby(label).sample(n, random_state=seed)``, one
    generator for all labels; ``"seed_per_label"``: the original notebook's draw, ``random_state=seed`` afresh for
    each label. The two pick different rows for the same seed."""
    return _sample(df, label_column, n, seed, method=method).reset_index(drop=True)


def make_splits(task: Task, train_df: pd.DataFrame, test_df: pd.DataFrame | None = None,
                sample: SampleSpec = SampleSpec()) -> Splits:
    """Sample train and validation from ``train_df``; test from ``test_df`` or else from the rest of ``train_df``
    (sizes per label, seed and draw: ``sample``).

    Only ``task.labels`` are used. With a separate ``test_df``, rows whose text was drawn for train or
    validation are left out of the test pool; except with ``method="seed_per_label"``, which draws the test rows
    from the whole test table as the original notebook did (excluding a row would shift every later draw of its
    label) and says in ``notes`` when a test sentence was also drawn for train.
    """
    if not task.is_classification:
        return _field_splits(task, train_df, test_df, sample)
    lab, seed, method = task.label_column, sample.seed, sample.method
    pool = _train_pool(task, train_df, sample, separate_test=test_df is not None)
    train = _sample(pool, lab, sample.train_per_label, seed, method=method)
    rest = pool.drop(index=train.index)
    val = _sample(rest, lab, sample.val_per_label, seed, method=method) if sample.val_per_label else None
    if val is not None:
        rest = rest.drop(index=val.index)
    notes: list[str] = []
    if test_df is None:
        test = _sample(rest, lab, sample.test_per_label, seed, what=" for the test split", method=method)
    else:
        taken = set(train[task.text_column]) | (set(val[task.text_column]) if val is not None else set())
        test, notes = _test_from_table(task, test_df, taken, sample)
    for note in notes:
        logger.warning("%s", note)
    splits = Splits(
        train=train.reset_index(drop=True),
        val=val.reset_index(drop=True) if val is not None else None,
        test=test.reset_index(drop=True),
        seed=seed,
        notes=tuple(notes),
    )
    logger.info("Splits for %s: %s (seed %d)", task.name, splits.sizes(), seed)
    return splits


def _train_pool(task: Task, train_df: pd.DataFrame, sample: SampleSpec, *, separate_test: bool) -> pd.DataFrame:
    """The rows of ``train_df`` with a task label; DataError when a label has none, or too few for the sample."""
    text, lab = task.text_column, task.label_column
    _require_columns(train_df, [text, lab], what="The training table")
    pool = train_df[train_df[lab].isin(task.labels)]
    present = set(pool[lab].unique())
    missing = [label for label in task.labels if label not in present]
    if missing:
        raise DataError(
            f"The training table has no rows for label(s) {listing(missing)}.",
            "Every label needs training rows: add some, or use a task without that label.",
        )
    train_n, val_n, test_n = sample.train_per_label, sample.val_per_label, sample.test_per_label
    need = train_n + val_n + (0 if separate_test else test_n)
    counts = pool[lab].value_counts()
    short = counts[counts < need]
    if len(short):
        parts = f"train {train_n} + validation {val_n}" + ("" if separate_test else f" + test {test_n}")
        listed = listing((f"{label!r} has {int(c)} row(s)" for label, c in short.sort_index().items()), quote=False)
        raise DataError(
            f"Not enough rows per label: {listed}, but {parts} = {need} are needed.",
            "Lower the per-label sizes, add rows, or give a separate test file.",
        )
    return pool


def _test_from_table(task: Task, test_df: pd.DataFrame, taken: set[str],
                     sample: SampleSpec) -> tuple[pd.DataFrame, list[str]]:
    """The test rows drawn from a separate table (``taken``: the texts drawn for train and validation), and notes
    about its labels and about test sentences also drawn for train."""
    text, lab = task.text_column, task.label_column
    _require_columns(test_df, [text, lab], what=_test_table(test_df))
    notes = check_test_labels(task.labels, test_df, lab)
    keep = test_df[lab].isin(task.labels)
    if sample.method != "seed_per_label":
        keep &= ~test_df[text].isin(taken)
    test_pool = test_df[keep]
    if test_pool.empty:
        raise DataError(
            f"{_test_table(test_df)} has no rows with the task's labels that are not already in train.",
            f"Its label column {lab!r} must use the same labels: {listing(task.labels)}.",
        )
    test = _sample(test_pool, lab, sample.test_per_label, sample.seed, what=f" in {_test_table(test_df, 'the')}",
                   method=sample.method)
    shared = int(test[text].isin(taken).sum())
    if shared:
        notes.append(f"{shared} test sentence(s) were also drawn for train or validation: the notebook's draw "
                     "does not leave them out of the test split.")
    return test, notes


def split_fingerprint(df: pd.DataFrame, task: Task) -> str:
    """A short hash of a split's (text, label) rows (a task beyond classification: all its columns): two runs on
    the same examples share it."""
    h = hashlib.sha256()
    for row in zip(*(df[c].astype(str) for c in task.columns), strict=True):
        h.update(b"\x1f".join(cell.encode() for cell in row))  # classification: text \x1f label \x1e, as always
        h.update(b"\x1e")
    return h.hexdigest()[:12]


def _draw(df: pd.DataFrame, n: int, seed: int, stratify: str, what: str) -> pd.DataFrame:
    """``n`` random rows of ``df`` (seeded); stratified by the column ``stratify``: each of its values keeps its
    share (largest remainders), so a small sample still has every common value."""
    if n > len(df):
        raise DataError(f"Not enough rows{what}: {len(df):,} left, {n:,} requested.",
                        "Lower the sample sizes, or add rows.")
    if not stratify:
        return df.sample(n=n, random_state=seed)
    _require_columns(df, [stratify])
    counts = df[stratify].astype(str).value_counts(sort=False).sort_index()
    exact = counts / len(df) * n
    take = exact.astype(int)
    for key in (exact - take).sort_values(ascending=False, kind="stable").index[: n - int(take.sum())]:
        take[key] += 1
    groups = df.groupby(df[stratify].astype(str), sort=True)
    return pd.concat([g.sample(n=int(take[k]), random_state=seed) for k, g in groups if take[k]])


def _field_splits(task: Task, train_df: pd.DataFrame, test_df: pd.DataFrame | None, sample: SampleSpec) -> Splits:
    """Splits of a task beyond classification: per label of its label output (sizes per label), else ``sample``'s
    sizes as rows in all, drawn at random with its seed (stratified by ``sample.stratify`` when given)."""
    label = task.label_output
    if label is not None:
        per_label = Task(name=task.name, text_column=task.input_specs[0].column, label_column=label.column,
                         labels=label.labels)
        pool = _train_pool(per_label, train_df[train_df[label.column].isin(label.labels)], sample,
                           separate_test=test_df is not None)
        draw = lambda df, n, what="": _sample(df, label.column, n, sample.seed, what, sample.method)  # noqa: E731
    else:
        _require_columns(train_df, list(task.columns), what="The training table")
        pool = train_df
        draw = lambda df, n, what="": _draw(df, n, sample.seed, sample.stratify, what)  # noqa: E731
    train = draw(pool, sample.train_per_label)
    rest = pool.drop(index=train.index)
    val = draw(rest, sample.val_per_label, " for validation") if sample.val_per_label else None
    if val is not None:
        rest = rest.drop(index=val.index)
    if test_df is not None:
        _require_columns(test_df, list(task.columns), what=_test_table(test_df))
        rest = test_df if label is None else test_df[test_df[label.column].isin(label.labels)]
    test = draw(rest, sample.test_per_label, " for the test split")
    return Splits(train=train.reset_index(drop=True), val=val.reset_index(drop=True) if val is not None else None,
                  test=test.reset_index(drop=True), seed=sample.seed)


