"""The Task page's "your own DSPy program" (#24): a program from the operator's folder (``Settings.programs_dir``)
run on a data file's columns, or on a task file's.

Pick a file under the folder and a name in it (found by reading the file's syntax: nothing in it runs here), and
optionally a metric function from the same folder; **Check program** learns what it holds from a child process with
a time limit (:func:`core.program.user_program.describe_isolated`): this process never loads a program file. Then a
column feeds each of the program's inputs and gold columns hold its answers. The task's fields are built by
:func:`core.program.pick.program_fields`, the same JSON as the command line's ``--program``.

Widgets keep their values under ``task.program.*`` keys, set with ``setdefault`` from the stored task before they are
drawn; what the check found is kept under :data:`INFO` for the program and metric it was made for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.config.errors import ConfigError, StudioError
from core.program.pick import PROGRAMS_HINT
from core.tasks import TaskRef
from core.tasks.field_tables import validate_fields
from core.tasks.fields import OutputSpec, input_from
from ui import cache, task_fields
from ui.widgets import safe_text, show_error, studio_errors

KEY = "task.program."
FILE, NAME, FUNCTION, CHECK = f"{KEY}file", f"{KEY}name", f"{KEY}function", f"{KEY}check"
INFO, TASK_NAME, SOURCE, ON = f"{KEY}info", f"{KEY}task_name", f"{KEY}source", f"{KEY}on_task_file"
REFUSED = f"{KEY}refused"  # why the stored task's program cannot be offered (outside the folder, gone)
KEEP = (INFO, SOURCE, ON)  # kept when another table is picked: what the check found is the program's, not the table's
NO_METRIC = ""  # the metric picker's "each output's own metric"
UNSCORED = ""  # an output picker's "no gold column"
MODE = "program"  # the Task page's mode of a data file run on your own program
MODE_LABEL = "Your own DSPy program: columns -> its inputs and answers"
ENABLE = f"Your own DSPy program: {PROGRAMS_HINT}"  # the caption where it would be offered, without the folder


def _in_key(field: str) -> str:
    return f"{KEY}in.{field}"


def _out_key(field: str) -> str:
    return f"{KEY}out.{field}"


def saved_program(ref: TaskRef) -> dict[str, Any]:
    """The fields of ``ref`` when they run your own program, else {}."""
    try:
        fields = json.loads(ref.fields) if ref.fields else {}
    except ValueError:
        return {}
    return fields if isinstance(fields, dict) and fields.get("program") else {}


def _prefill(saved: dict[str, Any], files: dict[str, str], functions: dict[str, str]) -> None:
    """The pickers' first values from a stored task's program fields; ConfigError for a program (or metric) the
    folder does not offer (a saved task's or a link's)."""
    from core.program.pick import check_program

    program = str(saved["program"])
    file = str(check_program(program, cache.settings().programs_dir))
    shown = next((rel for rel, path in files.items() if path == file), None)
    if shown is None:
        raise ConfigError(f"The program file {file} is not one the programs folder offers.",
                          "Put it under GEPA_STUDIO_PROGRAMS_DIR, then pick it here.")
    st.session_state.setdefault(FILE, shown)
    st.session_state.setdefault(NAME, program.rpartition(":")[2])
    if metric := str(saved.get("metric") or ""):
        chosen = next((rel for rel, path in functions.items() if path == metric), None)
        if chosen is None:
            raise ConfigError(f"The metric function {metric!r} is not one the programs folder offers.",
                              "Put it under GEPA_STUDIO_PROGRAMS_DIR, then pick it here.")
        st.session_state.setdefault(FUNCTION, chosen)
    for spec in saved.get("inputs", []):
        st.session_state.setdefault(_in_key(spec.get("field") or spec["column"]), spec["column"])
    for spec in saved.get("outputs", []):
        st.session_state.setdefault(_out_key(spec.get("field") or spec["column"]), spec["column"])
        task_fields.set_output(spec["column"], spec.get("kind") or "text", spec.get("metric") or "", KEY)


def _start(source: str, saved: dict[str, Any], files: dict[str, str], functions: dict[str, str]) -> None:
    """Another table starts the widgets afresh (but what the check found), filled from the stored task's program."""
    if st.session_state.get(SOURCE) == source:
        return
    for key in [k for k in st.session_state if str(k).startswith(KEY) and k not in KEEP]:
        del st.session_state[key]
    st.session_state[SOURCE] = source
    if saved:
        try:
            _prefill(saved, files, functions)
        except ConfigError as exc:  # said until a program is checked; the pickers start from the folder's first
            st.session_state[REFUSED] = {"message": exc.message, "hint": exc.hint}


def _keep_valid(key: str, options: list[str]) -> None:
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def _pick(programs_dir: Path, files: dict[str, str], functions: dict[str, str]) -> tuple[str, str]:
    """The program (``/abs/file.py:name``) and metric function (``/abs/file.py:fn`` or "") picked among the folder's
    ``files`` and ``functions``."""
    from core.program.pick import program_candidates

    if not files:
        st.info(f"No .py file under `{programs_dir}` (GEPA_STUDIO_PROGRAMS_DIR): put your program's file there "
                "(docs/programs.md).", icon=":material/folder_off:")
        st.stop()
    cols = st.columns(3)
    _keep_valid(FILE, list(files))
    shown = cols[0].selectbox("Program file", list(files), key=FILE,
                              help=f"The .py files under {programs_dir} (GEPA_STUDIO_PROGRAMS_DIR).")
    with studio_errors(stop=True):
        names = program_candidates(files[shown])
    if not names:
        st.info(f"`{shown}` defines no class or function of no arguments at its top level: a program is a "
                "dspy.Module, a class of one or a function that returns one (docs/programs.md).")
        st.stop()
    _keep_valid(NAME, names)
    name = cols[1].selectbox("Program", names, key=NAME,
                             help="A dspy.Module instance, a class of one (made with no arguments) or a function of "
                                  "no arguments that returns one; read from the file's text, not run.")
    options = [NO_METRIC, *functions]
    _keep_valid(FUNCTION, options)
    metric = cols[2].selectbox("Metric", options, key=FUNCTION, format_func=lambda m: m or "each answer's own",
                               help="Optional: a function in the folder written as dspy.GEPA calls a metric, "
                                    "metric(gold, pred, trace, pred_name, pred_trace). Without one, each answer is "
                                    "scored by the metric picked for it below.")
    return f"{files[shown]}:{name}", functions[metric] if metric else ""


def _checked(ref: str, metric: str, programs_dir: Path) -> Any:
    """What the program holds (a ProgramInfo) once **Check program** has asked a child process, else None; a check
    of another pick, or of a file changed since, does not count."""
    from core.program.user_program import ProgramInfo, check_unchanged, describe_isolated

    pressed = st.button("Check program", key=CHECK, icon=":material/fact_check:",
                        help="Loads the file in a separate process with a time limit (this page never runs it) and "
                             "lists its predictors.")
    if pressed:
        st.session_state.pop(INFO, None)
        try:
            with st.spinner("Loading the program in a separate process…"):
                info = describe_isolated(ref, metric or None, allowed_dir=programs_dir)
        except StudioError as exc:
            _check_error(exc)
            return None
        except ValueError:  # the child's answer was not its description alone: the file printed while it loaded
            show_error(ConfigError(f"Checking {Path(ref.rpartition(':')[0]).name} gave output other than its "
                                   "description: the file prints while it loads.",
                                   "Remove the print() that runs on import (or print to sys.stderr), then check "
                                   "again."))
            return None
        st.session_state[INFO] = {"ref": ref, "metric": metric, "info": info.to_dict()}
    kept = st.session_state.get(INFO)
    if not kept or (kept["ref"], kept["metric"]) != (ref, metric):
        return None
    info = ProgramInfo.from_dict(kept["info"])
    try:
        check_unchanged(info)
    except StudioError as exc:
        del st.session_state[INFO]
        show_error(exc)
        return None
    return info


def _check_error(exc: StudioError) -> None:
    """A failed check: the message, the lines of the user's own file from its traceback as code, the hint."""
    first, _, rest = safe_text(exc.message).partition("\n")
    st.error(first, icon=":material/error:")
    if rest.strip():
        st.code(rest, language=None)
    if exc.hint:
        st.caption(safe_text(exc.hint))


def _described(info: Any) -> None:
    """The program's identity and its predictors: name, kind, inputs -> outputs, instruction."""
    name = Path(info.file).name + ":" + info.ref.rpartition(":")[2]
    st.success(f"`{name}`: {len(info.predictors)} predictor(s); inputs {', '.join(info.inputs)}; identity "
               f"`{info.identity}`" + (f"; metric `{Path(info.metric).name}`" if info.metric else ""),
               icon=":material/fact_check:")
    st.dataframe(pd.DataFrame([{"predictor": p.name, "kind": p.kind,
                                "fields": f"{', '.join(p.inputs)} -> {', '.join(p.outputs)}",
                                "instruction": p.instruction} for p in info.predictors]),
                 hide_index=True, key=f"{KEY}predictors")


def _mapping(table: pd.DataFrame, info: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A column for each of the program's inputs, and the gold columns of its answers (each with its kind and
    metric); the defaults: the column of the same name."""
    from core.program.pick import program_outputs

    columns = [str(c) for c in table.columns]
    st.caption("Which column feeds each of the program's inputs")
    cols = st.columns(min(4, max(1, len(info.inputs))))
    inputs = {}
    for i, field in enumerate(info.inputs):
        _keep_valid(_in_key(field), columns)
        st.session_state.setdefault(_in_key(field), field if field in columns else None)
        inputs[field] = cols[i % len(cols)].selectbox(field, columns, key=_in_key(field), placeholder="pick a column",
                                                      help=f"The column read as the program's `{field}`.")
    st.caption("Which column holds the right answer of each of the program's answers (its kind and metric)")
    outputs: list[dict[str, Any]] = []
    for field in program_outputs(info):
        options = [UNSCORED, *(c for c in columns if c not in {o["column"] for o in outputs})]  # a column holds one
        _keep_valid(_out_key(field), options)
        st.session_state.setdefault(_out_key(field), field if field in columns else UNSCORED)
        column = st.selectbox(f"Gold `{field}`", options, key=_out_key(field),
                              format_func=lambda c: c or "(not scored)",
                              help=f"The column that holds the right `{field}`; not scored: the program answers it, "
                                   "nothing checks it.")
        if column:
            outputs.append({**task_fields.output_row(table, column, KEY, label=f"`{field}` ← **{column}**"),
                            "field": field})
    return inputs, outputs


def picked_fields(table: pd.DataFrame, source: str, saved: dict[str, Any]) -> dict[str, Any]:
    """The pickers on ``table`` (the data of ``source``), from a stored task's program fields ``saved``: the task's
    fields (:func:`core.program.pick.program_fields`), or the page ends with what is still to do."""
    from core.program.pick import program_fields, program_files
    from core.program.preview import metric_functions

    programs_dir = cache.settings().programs_dir
    if programs_dir is None:
        st.caption(ENABLE)
        st.stop()
    with studio_errors(stop=True):
        files, functions = program_files(programs_dir), metric_functions(programs_dir)
        _start(source, saved, files, functions)
        ref, metric = _pick(programs_dir, files, functions)
    info = _checked(ref, metric, programs_dir)
    if info is not None:
        st.session_state.pop(REFUSED, None)
    elif refused := st.session_state.get(REFUSED):
        show_error(ConfigError(refused["message"], refused["hint"]))
    if info is None:
        st.info("Press **Check program** to see what it holds: its file is loaded in a separate process, never in "
                "this page.", icon=":material/fact_check:")
        st.stop()
    _described(info)
    inputs, outputs = _mapping(table, info)
    if not all(inputs.values()) or not outputs:
        st.info("Pick a column for each input, and the gold column of at least one answer.")
        st.stop()
    with studio_errors(stop=True):
        fields = program_fields(info, inputs, outputs, metric)
        warnings = validate_fields(table, [input_from(i) for i in fields["inputs"]],
                                   [OutputSpec.from_dict(o) for o in fields["outputs"]])
    for warning in warnings:
        st.warning(warning, icon=":material/warning:")
    return fields


def file_ref(table: pd.DataFrame, upload: dict[str, str], stored: TaskRef) -> TaskRef:
    """A data file run on your own program: ``TaskRef(kind="file", fields=...)``."""
    stem = Path(upload["filename"]).stem
    same = stored.kind == "file" and stored.source == upload["path"]
    saved = saved_program(stored) if same else {}
    fields = picked_fields(table, upload["path"], saved)
    st.session_state.setdefault(TASK_NAME, stored.name if same and saved else "")
    name = st.text_input("Task name", key=TASK_NAME, placeholder=stem, help="Names the MLflow experiment.")
    return TaskRef(kind="file", source=upload["path"], name=name.strip() or stem, fields=json.dumps(fields))


def on_task_file(ref: TaskRef, stored: TaskRef) -> TaskRef:
    """A task file, optionally run on your own program: its columns feed the program's inputs and hold its answers
    (its metric stays unless a function is picked)."""
    from core.tasks.task_file import read_task_file

    if cache.settings().programs_dir is None:
        st.caption(ENABLE)
        return ref
    saved = saved_program(stored) if stored.kind == "taskfile" and stored.source == ref.source else {}
    st.session_state.setdefault(ON, bool(saved))
    if not st.toggle("Run it on your own DSPy program", key=ON,
                     help="Your program from the programs folder, fed by the task file's columns."):
        return ref
    with studio_errors(stop=True):
        table = cache.read_upload(str(read_task_file(ref.source).data))
    fields = picked_fields(table, ref.source, saved)
    return TaskRef(kind="taskfile", source=ref.source, name=ref.name, fields=json.dumps(fields))


def overview(task: Any) -> None:
    """What the Task page shows of a task run on your own program instead of the studio's prompt: its program and
    predictors (the prompts are its file's: only its jobs run it)."""
    st.subheader("The program")
    st.caption(f"Your own program `{Path(task.program.rpartition(':')[0]).name}:{task.program.rpartition(':')[2]}` "
               f"with {task.num_predictors} predictor(s): {', '.join(task.program_predictors)}. It keeps its own "
               "predictors and instructions; only its jobs run it, never this page, so its prompts are not shown "
               "here. No task file to save: a task file cannot name a program (the command line's --program can).")
