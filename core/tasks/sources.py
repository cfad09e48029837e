"""The table of task sources (demo, pubmed, file): the one list the Task page and the CLI both read.

A new source is one :class:`TaskSource` entry in :data:`SOURCES`: its title and help for the page and the
CLI, and a ``load(ref, settings)`` that returns the task and its cleaned train (and optional test) table.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from core.config.errors import ConfigError
from core.config.settings import Settings
from core.tasks.field_tables import clean_fields, fields_task, validate_fields
from core.tasks.fields import JudgeSpec
from core.tasks.labels import LABEL_OPTIONS
from core.tasks.model import SampleSpec, Splits, Task, TaskRef, demo_task, pubmed_task, table_task
from core.tasks.readers import load_demo, load_pubmed, read_table
from core.tasks.sampling import check_test_labels, make_splits
from core.tasks.task_file import read_task_file, shipped_task_files
from core.tasks.validate import align_labels, clean_table, validate_table

Tables = tuple[Task, pd.DataFrame, pd.DataFrame | None]


@dataclass(frozen=True)
class TaskSource:
    """One place a task can come from."""

    kind: str
    title: str  # how the Task page names it
    description: str  # one paragraph under the choice
    cli_help: str  # how `--task` describes it
    load: Callable[[TaskRef, Settings], Tables]


def _load_pubmed(ref: TaskRef, settings: Settings) -> Tables:
    train = load_pubmed("train", source=ref.source or None, cache_dir=settings.cache_dir)
    test = None
    if ref.test_source:
        test = load_pubmed("test", source=ref.test_source, cache_dir=settings.cache_dir)
    elif not ref.source:  # the hub's own test split; with a local train file, test comes from its rest
        test = load_pubmed("test", cache_dir=settings.cache_dir)
    clean = lambda df: clean_table(df, text_column="description", label_column="target", **_options(ref))  # noqa: E731
    task = pubmed_task(ref.source or "hub")
    return task, clean(train), (_aligned(clean(test), task, ref) if test is not None else None)


def _load_demo(ref: TaskRef, settings: Settings) -> Tables:
    return demo_task(), clean_table(load_demo(), text_column="description", label_column="target"), None


def _options(ref: TaskRef) -> dict[str, bool]:
    return {field: bool(getattr(ref, field)) for field in LABEL_OPTIONS}


def _aligned(test: pd.DataFrame, task: Task, ref: TaskRef) -> pd.DataFrame:
    """With the merge option, a test label that looks like a train label is spelled as in train ("1.0" -> "1")."""
    if ref.merge_similar_labels:
        test[task.label_column] = align_labels(test[task.label_column], task.labels)
    return test


def _read_checked(source: str, ref: TaskRef) -> tuple[pd.DataFrame, list[str]]:
    """The cleaned table of ``source`` and its validation warnings."""
    df = read_table(source)
    warnings = validate_table(df, text_column=ref.text_column, label_column=ref.label_column, **_options(ref))
    return clean_table(df, text_column=ref.text_column, label_column=ref.label_column, **_options(ref)), warnings


def _fields_json(ref: TaskRef) -> dict[str, object]:
    """``TaskRef.fields`` read as a JSON object ({} when empty)."""
    if not ref.fields:
        return {}
    try:
        spec = json.loads(ref.fields)
    except ValueError as exc:
        raise ConfigError(f"The task's fields are not valid JSON: {exc}.") from exc
    if not isinstance(spec, dict):
        raise ConfigError("The task's fields are not a JSON object.", "Pick input and output columns.")
    return spec


def ref_fields(ref: TaskRef) -> dict[str, object]:
    """The typed fields a reference names (``TaskRef.fields``): inputs, outputs, metric, judge; {} for none."""
    spec = _fields_json(ref)
    if not spec:
        return {}
    if not spec.get("inputs") or not spec.get("outputs"):
        raise ConfigError("The task's fields need inputs and outputs.", "Pick input and output columns.")
    if spec.get("judge"):
        spec["judge"] = JudgeSpec.from_dict(spec["judge"])
    return spec


# What a reference's fields may set over a task file's own (the CLI's --metric, --judge and --program on a task file or
# a shipped task).
OVERRIDES = ("metric", "judge", "program", "program_sha", "program_predictors", "inputs", "outputs")


def ref_overrides(ref: TaskRef) -> dict[str, object]:
    """The parts of ``TaskRef.fields`` that replace a task file's own (:data:`OVERRIDES`); {} for none."""
    spec = _fields_json(ref)
    out = {k: v for k, v in spec.items() if k in OVERRIDES and v not in (None, "", [])}
    if isinstance(out.get("judge"), dict):
        out["judge"] = JudgeSpec.from_dict(out["judge"])  # type: ignore[arg-type]
    return out


def _fields_tables(spec: dict[str, object], ref_name: str, source: str, test_source: str | None) -> Tables:
    """(task, cleaned train, cleaned test) of a data file read through typed fields."""
    df = read_table(source)
    spec = dict(spec)
    inputs, outputs = spec.pop("inputs"), spec.pop("outputs")
    spec.setdefault("name", ref_name)
    task = fields_task(df, inputs, outputs, source=source, **spec)  # type: ignore[arg-type]
    test = None
    if test_source:
        test_df = read_table(test_source)
        validate_fields(test_df, task.inputs or task.input_specs, task.outputs or task.output_specs)
        test = clean_fields(test_df, task) if task.outputs else clean_table(
            test_df, text_column=task.text_column, label_column=task.label_column)
    if not task.outputs:  # the fields were plain classification: the classic path's cleaning
        return task, clean_table(df, text_column=task.text_column, label_column=task.label_column), test
    return task, clean_fields(df, task), test


def _load_task_file(ref: TaskRef, settings: Settings, path: str | None = None) -> Tables:
    """A task file: ``path`` (a shipped task) or the reference's source."""
    tf = read_task_file(path or ref.source)
    spec = dict(tf.spec) | ref_overrides(ref)
    if ref.name:
        spec["name"] = ref.name
    return _fields_tables(spec, tf.name, str(tf.data), ref.test_source or (str(tf.test_data) if tf.test_data
                                                                           else None))


def _load_file(ref: TaskRef, settings: Settings) -> Tables:
    if not ref.source:
        raise ConfigError("No data file given.", "Upload a CSV or give its path.")
    if ref.fields:
        return _fields_tables(ref_fields(ref), ref.task_name, ref.source, ref.test_source or None)
    df, _ = _read_checked(ref.source, ref)
    task = table_task(df, text_column=ref.text_column, label_column=ref.label_column, name=ref.task_name,
                      source=ref.source)
    test = None
    if ref.test_source:
        test = _aligned(_read_checked(ref.test_source, ref)[0], task, ref)
    return task, df, test


SOURCES: dict[str, TaskSource] = {s.kind: s for s in (
    TaskSource("demo", "Demo (bundled)",
               "Invented clinical-trial sentences (60 per label) with the PubMed labels BACKGROUND, OBJECTIVE, "
               "METHODS, RESULTS, CONCLUSIONS: local and fast, good for a first run.",
               "bundled sentences written for this project (no network)", _load_demo),
    TaskSource("pubmed", "PubMed sentence roles",
               "Sentences of PubMed RCT abstracts labelled by their role. Empty path: the "
               "`ml4pubmed/pubmed-text-classification-cased` CSVs from the Hugging Face hub (needs internet, cached "
               "in the data dir). Or the path of a local copy: that CSV, or PubMed 20k/200k RCT `train.txt`.",
               "the PubMed RCT set from the hub, or --data PATH for a local copy", _load_pubmed),
    TaskSource("file", "Upload a table",
               "A CSV, TSV, Parquet or PubMed RCT .txt file: one text column and one label column, or any input "
               "columns and typed output columns with a metric.",
               "a CSV / Parquet / RCT .txt path (with --text-column and --label-column, or --input-columns and "
               "--output-columns)", _load_file),
    TaskSource("taskfile", "A task file",
               "A task file (TOML) that names a data file, its input columns, its typed outputs and the metric "
               "(see docs/tasks.md); the Task page saves one for any task.",
               "a task file's path (or use --task-file PATH)", _load_task_file),
)}


def _shipped_sources() -> dict[str, TaskSource]:
    """One source per task that ships with the project (core/tasks/shipped/NAME/task.toml)."""
    out = {}
    for name, path in shipped_task_files().items():
        tf = read_task_file(path)
        blurb = tf.spec.get("description") or tf.title
        out[name] = TaskSource(name, f"{tf.title} (shipped)", str(blurb), f"shipped task: {tf.title}",
                               functools.partial(_load_task_file, path=str(path)))
    return out


SOURCES.update(_shipped_sources())


def source_of(kind: str) -> TaskSource:
    try:
        return SOURCES[kind]
    except KeyError:
        raise ConfigError(f"Unknown task kind {kind!r}.", f"Use one of: {', '.join(SOURCES)}.") from None


def load_tables(ref: TaskRef, settings: Settings) -> Tables:
    """(task, train table, optional test table) for ``ref``, validated and cleaned."""
    return source_of(ref.kind).load(ref, settings)


def check_task(ref: TaskRef, settings: Settings) -> list[str]:
    """Everything a person should know before using ``ref``: its files' warnings and test labels absent from
    train. Raises the same errors as :func:`load_tables`."""
    warnings: list[str] = []
    if ref.kind == "file" and ref.source and not ref.fields:
        warnings += _read_checked(ref.source, ref)[1]
        if ref.test_source:
            warnings += [f"Test file: {w}" for w in _read_checked(ref.test_source, ref)[1]]
    task, _, test = load_tables(ref, settings)
    if test is not None and task.is_classification:
        warnings += check_test_labels(task.labels, test, task.label_column)
    return warnings


def prepare(ref: TaskRef, sample: SampleSpec, settings: Settings) -> tuple[Task, Splits]:
    """Load and sample: the task and its train / validation / test splits."""
    task, train, test = load_tables(ref, settings)
    splits = make_splits(task, train, test, sample)
    return task, splits


def save_upload(content: bytes, filename: str, settings: Settings) -> Path:
    """Keep an uploaded file in the data dir (content-addressed) so jobs can reread it."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    suffix = Path(filename).suffix.lower() or ".csv"
    path = settings.data_dir / "uploads" / f"{Path(filename).stem[:40]}-{digest}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(content)
    return path
