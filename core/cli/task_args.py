"""The task arguments every command that runs a task shares: ``--task``, a data file's columns (a text and a label
column, or ``--input-columns`` and typed ``--output-columns``), ``--metric``, ``--task-file``, ``--judge`` and the
sample sizes (a task file's own sizes unless given)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core.config.errors import ConfigError
from core.scoring import FIELD_METRICS
from core.tasks import LABEL_OPTIONS, SOURCES, SampleSpec, TaskRef
from core.tasks.fields import KINDS
from core.tasks.task_file import read_task_file, shipped_task_files

_SIZES = {"train_per_label": 3, "val_per_label": 0, "test_per_label": 10, "seed": 42}
METRIC_HELP = (f"how answers are scored: {', '.join(FIELD_METRICS)} (numeric:TOL, e.g. numeric:0.01 or numeric:1%%), "
               "judge:RUBRIC_FILE (an LLM judge with your rubric; --judge names its model) or FILE.py:FUNCTION "
               "(your function: fn(example, prediction) -> score in [0, 1], or (score, feedback))")


def add_task_args(p: argparse.ArgumentParser) -> None:
    """The task arguments (see the module's docstring)."""
    named = "; ".join(f"'{s.kind}': {s.cli_help}" for s in SOURCES.values() if s.kind not in ("file", "taskfile"))
    p.add_argument("--task", default="demo", help=f"{named}; or a path: {SOURCES['file'].cli_help}")
    p.add_argument("--task-file", help="a task file (TOML): its data, input and output columns, metric and sizes")
    p.add_argument("--data", help="local file or URL for the pubmed task's train split")
    p.add_argument("--test-data", help="separate test file (otherwise test is sampled from the rest)")
    p.add_argument("--text-column", default="description")
    p.add_argument("--label-column", default="target")
    p.add_argument("--input-columns", help="a data file's input columns, comma-separated (instead of --text-column)")
    p.add_argument("--output-columns", help="its output columns, comma-separated, each COLUMN:KIND with KIND one of "
                   f"{', '.join(KINDS)} (default text), e.g. drug:text,dose:text,tags:labels")
    p.add_argument("--metric", help=METRIC_HELP)
    p.add_argument("--judge", help="the model of an LLM judge (--metric judge:RUBRIC_FILE, or a task file's judge)")
    for option in LABEL_OPTIONS.values():  # the Task page's checkboxes, as flags
        p.add_argument(option.flag, dest=option.field, action="store_true", help=f"{option.help}; the Task page's "
                       f"'{option.box}'")
    p.add_argument("--train-per-label", type=int, help="train examples per label (a task without a label output: in "
                   "all); default 3, or the task file's")
    p.add_argument("--val-per-label", type=int, help="validation examples, as --train-per-label (default 0)")
    p.add_argument("--test-per-label", type=int, help="test examples, as --train-per-label (default 10)")
    p.add_argument("--seed", type=int)
    p.add_argument("--stratify", help="a task without a label output: draw each split stratified by this column")
    p.add_argument("--api-base", help="base URL for inline provider/model names (an OpenAI-compatible server)")


def _metric_fields(metric: str | None) -> dict[str, Any]:
    """``--metric`` as the fields' metric (and judge): judge:RUBRIC_FILE reads the rubric file."""
    if not metric:
        return {}
    if metric.startswith("judge:"):
        path = Path(metric.split(":", 1)[1])
        try:
            rubric = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"Cannot read the rubric {path}: {exc.strerror or exc}.",
                              "--metric judge:RUBRIC_FILE names a text file with your rubric.") from exc
        return {"metric": "judge", "judge": {"rubric": rubric, "name": path.stem}}
    return {"metric": metric}


def _outputs(raw: str) -> list[dict[str, str]]:
    outs = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        column, _, kind = part.rpartition(":") if ":" in part else (part, "", "text")
        if kind not in KINDS:
            raise ConfigError(f"--output-columns: {part!r} has unknown kind {kind!r}.", f"Kinds: {', '.join(KINDS)}.")
        outs.append({"column": column, "kind": kind})
    return outs


def _fields(args: argparse.Namespace) -> str:
    """The typed fields of a data file (TaskRef.fields), "" for a text and a label column scored by exact match."""
    inputs = [c.strip() for c in (args.input_columns or "").split(",") if c.strip()] or [args.text_column]
    outputs = _outputs(args.output_columns) if args.output_columns else [{"column": args.label_column,
                                                                          "kind": "label"}]
    extra = _metric_fields(args.metric)
    if not args.input_columns and not args.output_columns and not extra:
        return ""
    return json.dumps({"inputs": [{"column": c} for c in inputs], "outputs": outputs, **extra})


def _task_file(args: argparse.Namespace) -> str | None:
    """The task file the arguments name: --task-file, a shipped task's, or None."""
    if args.task_file:
        return args.task_file
    shipped = shipped_task_files()
    return str(shipped[args.task]) if args.task in shipped else None


def task_ref(args: argparse.Namespace) -> TaskRef:
    options = {field: bool(getattr(args, field, False)) for field in LABEL_OPTIONS}  # --merge-labels, --drop-missing
    if args.task_file:
        if args.input_columns or args.output_columns:
            raise ConfigError("--task-file names the columns itself.", "Drop --input-columns / --output-columns.")
        return TaskRef(kind="taskfile", source=args.task_file, test_source=args.test_data or "",
                       fields=json.dumps(_metric_fields(args.metric)) if args.metric else "")
    if args.task in SOURCES and args.task != "file":
        if args.input_columns or args.output_columns:
            raise ConfigError(f"--input-columns / --output-columns are for a data file, not the {args.task!r} task.",
                              "Give the file's path as --task.")
        return TaskRef(kind=args.task, source=args.data or "", test_source=args.test_data or "", **options)
    return TaskRef(kind="file", source=args.task, test_source=args.test_data or "",
                   text_column=args.text_column, label_column=args.label_column, fields=_fields(args), **options)


def sample_spec(args: argparse.Namespace) -> SampleSpec:
    """The sizes given, else the task file's, else the defaults (3 train, 0 validation, 10 test per label)."""
    path = _task_file(args)
    chosen = dict(_SIZES) | (read_task_file(path).sample if path else {})
    given = {k: getattr(args, k, None) for k in _SIZES}
    chosen |= {k: v for k, v in given.items() if v is not None}
    if getattr(args, "stratify", None):
        chosen["stratify"] = args.stratify
    return SampleSpec(**chosen)
