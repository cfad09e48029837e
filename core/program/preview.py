"""What the Task page shows of a task beyond classification before anything runs: the signature and the full prompt
of one example, the metric's name, a first guess at each output column's kind, and the metric functions the
operator's folder offers.

The page is thin and never imports DSPy: it asks here. The prompt is the one :func:`core.program.program.
render_prompt` builds for the program a baseline starts from, so what the page shows is what the model is sent.
Metric functions are found by reading their files' syntax (``ast``), never by running them: listing a folder must
not execute the code in it (loading it is :func:`core.scoring.load_function`'s job, when a run is started).
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from core.config.errors import ConfigError
from core.program.program import make_program, make_signature, prompt_text, render_prompt
from core.scoring import metric_label
from core.tasks import Task
from core.tasks.field_tables import cell_number
from core.tasks.fields import split_labels

logger = logging.getLogger(__name__)

MAX_METRIC_FILES = 200  # .py files read under the metric functions folder (a folder is for a few metric files)
FUNCTIONS_HINT = ("Set GEPA_STUDIO_METRICS_DIR (environment or .streamlit/secrets.toml) to a folder of .py files "
                  "holding functions fn(example, prediction) -> score, then restart the dashboard "
                  "(docs/configuration.md).")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def signature_text(task: Task) -> str:
    """The task's DSPy signature as one line: ``context: str, question: str -> answer: str`` (types as the
    adapters parse them: ``Literal['a', 'b']``, ``list[Literal[...]]``, ``float``, ``dict[str, Any]``)."""
    sig = make_signature(task)

    def side(fields: Mapping[str, Any]) -> str:
        return ", ".join(f"{name}: {_type_name(f.annotation)}" for name, f in fields.items())

    return f"{side(sig.input_fields)} -> {side(sig.output_fields)}"


def task_preview(task: Task, row: Mapping[str, Any]) -> dict[str, str]:
    """``{"signature", "prompt"}``: the signature line and the FULL prompt (every message) the starting program
    sends for ``row`` (a record of the task's table, by column). Your own program's prompts are not rendered here
    (that would run its code): its runs save each predictor's prompt for the Prompts page."""
    if task.program:
        steps = ", ".join(task.program_predictors) or "its predictors"
        return {"signature": f"{', '.join(task.input_names)} -> {', '.join(task.output_names)} through your "
                             f"program ({steps})",
                "prompt": "Your program's prompts are saved by its runs, one per predictor (the Prompts page shows "
                          "them): the dashboard never runs the program's code."}
    program = make_program(task)
    inputs = {spec.name: "" if row.get(spec.column) is None else str(row.get(spec.column))
              for spec in task.input_specs}
    messages = render_prompt(program, inputs)
    return {"signature": signature_text(task), "prompt": prompt_text(messages)}


def metric_name(task: Task) -> str:
    """What the task's scores are called ("token F1", "judge: tone"...); ConfigError for a metric that cannot be
    read (an unknown name, a tolerance that is not a number)."""
    if task.is_classification:
        return "accuracy"
    return metric_label(task.output_specs, task.metric, task.judge)


def guess_kind(cells: pd.Series) -> str:
    """A first guess at an output column's kind (:data:`core.tasks.fields.KINDS`) from its cells: every filled cell
    a number: ``number``; a JSON object: ``json``; lists of a few labels (``a; b``, ``["a"]``): ``labels``; few
    distinct short values: ``label``; else ``text``."""
    filled = cells.dropna().astype(str).str.strip()
    filled = filled[filled != ""]
    if filled.empty:
        return "text"
    if filled.map(lambda c: cell_number(c) is not None).all():
        return "number"
    if filled.str.startswith("{").all():
        return "json"
    if filled.str.contains(r"[;|]|^\[", regex=True).any():
        named = {label for cell in filled for label in split_labels(cell)}
        if 2 <= len(named) <= 30 and max(map(len, named)) <= 40:
            return "labels"
    distinct = filled.nunique()
    if 2 <= distinct <= 20 and distinct <= len(filled) / 2 and filled.str.len().max() <= 40:
        return "label"
    return "text"


def is_function_metric(metric: str) -> bool:
    """``metric`` names a user's function (``path/to/file.py:fn``)."""
    return str(metric or "").rpartition(":")[0].strip().lower().endswith(".py")


def _functions_in(path: Path) -> list[str]:
    """Top-level public functions of a file that take at least two arguments (example, prediction)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as exc:
        logger.warning("metric file %s skipped: %s", path, exc)
        return []
    out = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            args = node.args
            if len(args.posonlyargs) + len(args.args) >= 2 or args.vararg is not None:
                out.append(node.name)
    return out


def metric_functions(folder: str | Path | None) -> dict[str, str]:
    """The metric functions under ``folder`` (the operator's GEPA_STUDIO_METRICS_DIR): ``"sub/file.py:fn"`` (as
    the page names it) -> ``"/abs/sub/file.py:fn"`` (the task's metric, loadable from any working directory).
    ConfigError when no folder is configured or it is not a folder."""
    if folder is None:
        raise ConfigError("No folder for metric functions is configured.", FUNCTIONS_HINT)
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"The metric functions folder {root} is not a folder.", FUNCTIONS_HINT)
    files = sorted(p for p in root.rglob("*.py")
                   if not any(part.startswith((".", "__")) for part in p.relative_to(root).parts[:-1]))
    found: dict[str, str] = {}
    for path in files[:MAX_METRIC_FILES]:
        rel = path.relative_to(root).as_posix()
        for name in _functions_in(path):
            found[f"{rel}:{name}"] = f"{path.resolve()}:{name}"
    return found


def check_function_metric(metric: str, folder: str | Path | None) -> None:
    """ConfigError unless a function metric's file lies under ``folder`` (the dashboard loads no other code); any
    other metric passes. A relative path is read from the working directory, as a run reads it."""
    if not is_function_metric(metric):
        return
    path = Path(metric.rpartition(":")[0].strip()).expanduser().resolve()
    if folder is None:
        raise ConfigError(f"The task is scored by your function {metric!r}, but the dashboard may load none.",
                          FUNCTIONS_HINT)
    root = Path(folder).expanduser().resolve()
    if not path.is_relative_to(root):
        raise ConfigError(f"The task's metric function {metric!r} is outside the metric functions folder {root}.",
                          "Move the file under that folder, or run the task from the command line.")
