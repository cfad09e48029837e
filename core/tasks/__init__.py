"""Tasks: what a task is (model), reading files (readers), checking them (validate), sampling splits
(sampling) and the one table of task sources (sources). Imports nothing from optimize, jobs or cli."""

from core.tasks.labels import LABEL_OPTIONS, LabelOption, lookalike_groups, lookalike_key
from core.tasks.model import (
    PUBMED_LABEL_DESCRIPTIONS,
    PUBMED_LABELS,
    SAMPLE_METHODS,
    SampleMethod,
    SampleSpec,
    Splits,
    Task,
    TaskRef,
    default_instruction,
    demo_task,
    pubmed_task,
    table_task,
)
from core.tasks.readers import load_demo, load_pubmed, read_table
from core.tasks.sampling import check_test_labels, make_splits, sample_per_label, split_fingerprint
from core.tasks.sources import SOURCES, TaskSource, check_task, load_tables, prepare, save_upload, source_of
from core.tasks.text import MISSING_MARKERS, is_missing_marker, label_key, listing
from core.tasks.validate import MAX_LABELS, clean_table, guess_columns, label_counts, validate_table

__all__ = [
    "LABEL_OPTIONS", "MAX_LABELS", "MISSING_MARKERS", "LabelOption", "lookalike_groups", "lookalike_key",
    "PUBMED_LABELS", "PUBMED_LABEL_DESCRIPTIONS", "SAMPLE_METHODS", "SOURCES", "SampleMethod", "SampleSpec", "Splits",
    "Task", "TaskRef", "TaskSource", "check_task", "check_test_labels", "clean_table", "default_instruction",
    "demo_task", "guess_columns", "is_missing_marker", "label_counts", "label_key", "listing", "load_demo",
    "load_pubmed", "load_tables", "make_splits", "prepare", "pubmed_task", "read_table", "sample_per_label",
    "save_upload", "source_of", "split_fingerprint", "table_task", "validate_table",
]
