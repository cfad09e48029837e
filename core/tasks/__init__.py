"""Tasks: what a task is (model), reading files (readers), checking them (validate), sampling splits
(sampling) and the one table of task sources (sources). Imports nothing from optimize, jobs or cli."""

from core.tasks.model import (
    PUBMED_LABEL_DESCRIPTIONS,
    PUBMED_LABELS,
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
from core.tasks.sampling import make_splits, sample_per_label, split_fingerprint
from core.tasks.sources import SOURCES, TaskSource, load_tables, prepare, save_upload, source_of
from core.tasks.validate import clean_table, guess_columns, label_counts, validate_table

__all__ = [
    "PUBMED_LABELS", "PUBMED_LABEL_DESCRIPTIONS", "SOURCES", "SampleSpec", "Splits", "Task", "TaskRef", "TaskSource",
    "clean_table", "default_instruction", "demo_task", "guess_columns", "label_counts", "load_demo", "load_pubmed",
    "load_tables", "make_splits", "prepare", "pubmed_task", "read_table", "sample_per_label", "save_upload",
    "source_of", "split_fingerprint", "table_task", "validate_table",
]
