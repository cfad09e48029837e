"""Task files: a small TOML file that says which columns of a data file are the inputs, which the typed outputs,
and how answers are scored, read by the Task page, the CLI (``--task-file``) and the tasks that ship with the
project (core/tasks/shipped/*/task.toml). Paths inside a task file are relative to the file.

    name = "extract"
    data = "data.csv"
    metric = ""                       # "" = each output's own; a metric for all; "judge"; "file.py:fn"
    [[inputs]]
    column = "sentence"
    [[outputs]]
    column = "dose"
    kind = "text"                     # label | labels | text | number | json
    metric = "f1"
    [judge]                           # with metric = "judge": rubric = "..." or rubric_file = "rubric.md"
    [sample]                          # train / val / test sizes (rows, or per label with a label output)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from core.config.errors import ConfigError
from core.tasks.fields import JudgeSpec
from core.tasks.model import SampleSpec, Task

SHIPPED_DIR = Path(__file__).parent / "shipped"
_TOP_KEYS = {"name", "title", "description", "data", "test_data", "instruction", "metric", "inputs", "outputs",
             "judge", "sample"}
_SAMPLE_KEYS = {"train": "train_per_label", "val": "val_per_label", "test": "test_per_label", "seed": "seed",
                "stratify": "stratify"}


@dataclass(frozen=True)
class TaskFile:
    """A task file read: the task's fields (``spec``: the keyword arguments of :class:`Task` but the label sets,
    which come from the data), where its data is, and the sample sizes it asks for."""

    path: Path
    name: str
    title: str
    data: Path
    test_data: Path | None
    spec: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)  # SampleSpec fields the file sets

    def sample_spec(self, **override: Any) -> SampleSpec:
        return SampleSpec(**{**self.sample, **override})


def _relative(base: Path, value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"Task file {base}: {what} must be a file name.", 'E.g. data = "data.csv".')
    path = Path(value)
    return path if path.is_absolute() else (base.parent / path)


def _judge(path: Path, raw: Any) -> JudgeSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"Task file {path}: [judge] must be a table.", 'E.g. [judge] rubric_file = "rubric.md".')
    rubric = raw.get("rubric", "")
    if raw.get("rubric_file"):
        rubric_path = _relative(path, raw["rubric_file"], "judge.rubric_file")
        try:
            rubric = rubric_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Task file {path}: cannot read the rubric {rubric_path}: {exc.strerror}.") from exc
    return JudgeSpec(rubric=str(rubric), name=str(raw.get("name") or "rubric"), model=str(raw.get("model") or ""))


def read_task_file(path: str | Path) -> TaskFile:
    """Read and check a task file (ConfigError naming the file and the key for anything wrong)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read the task file {path}: {exc.strerror or exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Task file {path} is not valid TOML: {exc}.", "See docs/tasks.md for the format.") from exc
    if unknown := sorted(set(raw) - _TOP_KEYS):
        raise ConfigError(f"Task file {path} has unknown key(s): {', '.join(unknown)}.",
                          f"Its keys are: {', '.join(sorted(_TOP_KEYS))}.")
    if not raw.get("inputs") or not raw.get("outputs"):
        raise ConfigError(f"Task file {path} needs [[inputs]] and [[outputs]] tables.",
                          'E.g. [[inputs]] column = "text" and [[outputs]] column = "answer" kind = "text".')
    sample = raw.get("sample") or {}
    if unknown := sorted(set(sample) - set(_SAMPLE_KEYS)):
        raise ConfigError(f"Task file {path}: [sample] has unknown key(s) {', '.join(unknown)}.",
                          f"Use: {', '.join(_SAMPLE_KEYS)}.")
    name = str(raw.get("name") or (path.parent.name if path.name == "task.toml" else path.stem))
    spec = {"name": name, "inputs": list(raw["inputs"]), "outputs": list(raw["outputs"]),
            "metric": str(raw.get("metric") or ""), "judge": _judge(path, raw.get("judge")),
            "instruction": str(raw.get("instruction") or ""), "description": str(raw.get("description") or "")}
    if spec["metric"] == "judge" and spec["judge"] is None:
        raise ConfigError(f"Task file {path}: metric = \"judge\" needs a [judge] table with its rubric.")
    test = raw.get("test_data")
    return TaskFile(path=path, name=name, title=str(raw.get("title") or name), data=_relative(path, raw.get("data"),
                    "data"), test_data=_relative(path, test, "test_data") if test else None, spec=spec,
                    sample={_SAMPLE_KEYS[k]: v for k, v in sample.items()})


def task_file_text(task: Task, data: str, sample: SampleSpec | None = None, test_data: str = "") -> str:
    """The TOML of a task file for ``task`` reading ``data`` (what the Task page's "save task file" writes)."""
    doc: dict[str, Any] = {"name": task.name, "data": data}
    if test_data:
        doc["test_data"] = test_data
    for key in ("description", "instruction", "metric"):
        if getattr(task, key):
            doc[key] = getattr(task, key)
    doc["inputs"] = [f.to_dict() for f in task.input_specs]
    doc["outputs"] = [f.to_dict() for f in task.output_specs]
    if task.judge is not None:
        doc["judge"] = {k: v for k, v in task.judge.to_dict().items() if v}
    if sample is not None:
        chosen = sample.to_dict()
        doc["sample"] = {short: chosen[full] for short, full in _SAMPLE_KEYS.items() if chosen.get(full) not in ("",)}
    return tomli_w.dumps(doc)


def shipped_task_files() -> dict[str, Path]:
    """The tasks that ship with the project: name -> its task.toml (sorted by name)."""
    if not SHIPPED_DIR.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(SHIPPED_DIR.glob("*/task.toml"))}
