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
    p.add_argument("--program", help="your own DSPy program, FILE.py:NAME (a dspy.Module, a class of one or a "
                   "function that returns one; docs/programs.md): its inputs are read from the columns of the same "
                   "names unless --input-columns maps them (FIELD=COLUMN); --metric FILE.py:FUNCTION scores it")
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


def _mapped(part: str) -> dict[str, str]:
    """``COLUMN`` or ``FIELD=COLUMN`` (a program's field fed from a column of another name)."""
    field_name, sep, column = part.partition("=")
    return {"column": column.strip(), "field": field_name.strip()} if sep else {"column": part}


def _inputs(raw: str) -> list[dict[str, str]]:
    return [_mapped(c.strip()) for c in raw.split(",") if c.strip()]


def _outputs(raw: str) -> list[dict[str, str]]:
    outs = []
    for part in (p.strip() for p in raw.split(",") if p.strip()):
        column, _, kind = part.rpartition(":") if ":" in part else (part, "", "text")
        if kind not in KINDS:
            raise ConfigError(f"--output-columns: {part!r} has unknown kind {kind!r}.", f"Kinds: {', '.join(KINDS)}.")
        outs.append({**_mapped(column), "kind": kind})
    return outs


def _program_fields(args: argparse.Namespace) -> dict[str, Any]:
    """``--program``: the program (its path made absolute), its file's sha256, and, where not given, its inputs
    as columns of the same names and its last predictor's outputs (but ``reasoning``) as text columns. Loading the
    file runs its code: the CLI is the user's own process."""
    if not getattr(args, "program", None):
        return {}
    from core.program.preview import is_function_metric
    from core.program.user_program import describe  # loads dspy: only when a program is given

    info = describe(args.program, getattr(args, "metric", None) if is_function_metric(args.metric) else None)
    out: dict[str, Any] = {"program": f"{info.file}:{args.program.rpartition(':')[2]}",
                           "program_sha": info.file_sha256,
                           "program_predictors": [p.name for p in info.predictors]}
    if is_function_metric(args.metric):  # read by the job's worker, wherever it runs from
        path, _, name = str(args.metric).rpartition(":")
        out["metric"] = f"{Path(path).expanduser().resolve()}:{name}"
    if not args.input_columns:
        out["inputs"] = [{"column": name} for name in info.inputs]
    if not args.output_columns:
        out["outputs"] = [{"column": name} for name in info.predictors[-1].outputs if name != "reasoning"]
    return out


def _fields(args: argparse.Namespace) -> str:
    """The typed fields of a data file (TaskRef.fields), "" for a text and a label column scored by exact match."""
    inputs = _inputs(args.input_columns or "") or [{"column": args.text_column}]
    outputs = _outputs(args.output_columns) if args.output_columns else [{"column": args.label_column,
                                                                          "kind": "label"}]
    extra = _metric_fields(args.metric) | _program_fields(args)
    if not args.input_columns and not args.output_columns and not extra:
        return ""
    return json.dumps({"inputs": inputs, "outputs": outputs, **extra})


def _overrides(args: argparse.Namespace) -> str:
    """What a task file's or shipped task's own fields are replaced by: --metric, --program and its columns."""
    over = _metric_fields(args.metric) | _program_fields(args)
    if args.input_columns:
        over["inputs"] = _inputs(args.input_columns)
    if args.output_columns:
        over["outputs"] = _outputs(args.output_columns)
    return json.dumps(over) if over else ""


def _task_file(args: argparse.Namespace) -> str | None:
    """The task file the arguments name: --task-file, a shipped task's, or None."""
    if args.task_file:
        return args.task_file
    shipped = shipped_task_files()
    return str(shipped[args.task]) if args.task in shipped else None


def task_ref(args: argparse.Namespace) -> TaskRef:
    options = {field: bool(getattr(args, field, False)) for field in LABEL_OPTIONS}  # --merge-labels, --drop-missing
    program = bool(getattr(args, "program", None))
    if args.task_file:
        if (args.input_columns or args.output_columns) and not program:
            raise ConfigError("--task-file names the columns itself.", "Drop --input-columns / --output-columns.")
        return TaskRef(kind="taskfile", source=args.task_file, test_source=args.test_data or "",
                       fields=_overrides(args))
    if args.task in shipped_task_files():
        if (args.input_columns or args.output_columns) and not program:
            raise ConfigError(f"The {args.task!r} task names its columns itself.",
                              "Drop --input-columns / --output-columns, or give --program to map them.")
        return TaskRef(kind=args.task, test_source=args.test_data or "", fields=_overrides(args))
    if args.task in SOURCES and args.task != "file":
        if program:
            raise ConfigError(f"--program needs a task with named columns, not the {args.task!r} task.",
                              "Give a data file's path as --task (with --input-columns FIELD=COLUMN), a task file "
                              "or a shipped task.")
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
