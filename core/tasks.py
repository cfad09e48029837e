"""Where a task's data comes from and how it is sampled: plain data, so a background process can rebuild it."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from core import data
from core.data import Splits, Task
from core.errors import ConfigError
from core.settings import Settings

logger = logging.getLogger(__name__)

TaskKind = Literal["pubmed", "demo", "file"]


@dataclass(frozen=True)
class TaskRef:
    """How to load a task: the PubMed set (hub or a local copy), the bundled demo, or a user file."""

    kind: TaskKind = "demo"
    source: str = ""  # pubmed: optional local path/URL of the train file; file: the path
    test_source: str = ""  # optional separate test file (pubmed: its test split)
    text_column: str = "description"
    label_column: str = "target"
    name: str = ""

    @property
    def task_name(self) -> str:
        if self.name:
            return self.name
        if self.kind == "file":
            return Path(self.source).stem or "custom"
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TaskRef":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SampleSpec:
    """Per-label sample sizes and the seed (defaults as the seed notebook: 3 train, 10 test per label)."""

    train_per_label: int = 3
    val_per_label: int = 0
    test_per_label: int = 10
    seed: int = 42

    def __post_init__(self) -> None:
        if self.train_per_label < 1 or self.test_per_label < 1 or self.val_per_label < 0:
            raise ConfigError(
                "Sample sizes must be at least 1 per label for train and test (0 or more for validation).",
                f"Got train={self.train_per_label}, validation={self.val_per_label}, test={self.test_per_label}.",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SampleSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def load_tables(ref: TaskRef, settings: Settings) -> tuple[Task, pd.DataFrame, pd.DataFrame | None]:
    """(task, train table, optional test table) for ``ref``, validated and cleaned."""
    if ref.kind == "pubmed":
        train = data.load_pubmed("train", source=ref.source or None, cache_dir=settings.cache_dir)
        test = None
        if ref.test_source:
            test = data.load_pubmed("test", source=ref.test_source, cache_dir=settings.cache_dir)
        elif not ref.source:  # the hub's own test split; with a local train file, test comes from its rest
            test = data.load_pubmed("test", cache_dir=settings.cache_dir)
        task = data.pubmed_task(ref.source or "hub")
        return task, data.clean_table(train, text_column="description", label_column="target"), (
            data.clean_table(test, text_column="description", label_column="target") if test is not None else None)
    if ref.kind == "demo":
        df = data.load_demo()
        return data.demo_task(), data.clean_table(df, text_column="description", label_column="target"), None
    if ref.kind == "file":
        if not ref.source:
            raise ConfigError("No data file given.", "Upload a CSV or give its path.")
        df = data.read_table(ref.source)
        data.validate_table(df, text_column=ref.text_column, label_column=ref.label_column)
        df = data.clean_table(df, text_column=ref.text_column, label_column=ref.label_column)
        test = None
        if ref.test_source:
            test = data.read_table(ref.test_source)
            data.validate_table(test, text_column=ref.text_column, label_column=ref.label_column)
            test = data.clean_table(test, text_column=ref.text_column, label_column=ref.label_column)
        task = data.table_task(df, text_column=ref.text_column, label_column=ref.label_column,
                               name=ref.task_name, source=ref.source)
        return task, df, test
    raise ConfigError(f"Unknown task kind {ref.kind!r}.", "Use 'pubmed', 'demo' or 'file'.")


def prepare(ref: TaskRef, sample: SampleSpec, settings: Settings) -> tuple[Task, Splits]:
    """Load and sample: the task and its train / validation / test splits."""
    task, train, test = load_tables(ref, settings)
    splits = data.make_splits(task, train, test, train_per_label=sample.train_per_label,
                              val_per_label=sample.val_per_label, test_per_label=sample.test_per_label,
                              seed=sample.seed)
    return task, splits


def split_fingerprint(df: pd.DataFrame, task: Task) -> str:
    """A short hash of a split's (text, label) rows: two runs on the same examples share it."""
    h = hashlib.sha256()
    for text, label in zip(df[task.text_column].astype(str), df[task.label_column].astype(str), strict=True):
        h.update(text.encode())
        h.update(b"\x1f")
        h.update(label.encode())
        h.update(b"\x1e")
    return h.hexdigest()[:12]


def save_upload(content: bytes, filename: str, settings: Settings) -> Path:
    """Keep an uploaded file in the data dir (content-addressed) so jobs can reread it."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    suffix = Path(filename).suffix.lower() or ".csv"
    path = settings.data_dir / "uploads" / f"{Path(filename).stem[:40]}-{digest}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(content)
    return path
