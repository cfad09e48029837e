"""The Task page's pieces for a task beyond classification: a task file on the server, the any-task pickers (input
columns, typed output columns with their metrics, the task-wide scoring), loading a task file onto an uploaded
table, the "stratify by" choice, and the overview (preview table, signature, one example's full prompt, saving the
task file).

Widgets keep their values under ``task.fields.*`` keys, set with ``setdefault`` from the stored task (or from a
loaded task file) before they are drawn, so a loaded file fills them in and a rerun never resets them. Metric
functions are only ever those under the operator's folder (``Settings.metrics_dir``): no code comes from the browser.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.config.errors import ConfigError, DataError
from core.tasks import SampleSpec, Splits, Task, TaskRef
from core.tasks.field_tables import validate_fields
from core.tasks.fields import DEFAULT_METRIC, KINDS, OutputSpec, input_from, output_from
from core.tasks.task_file import read_task_file, task_file_text
from ui.widgets import studio_errors

MODES = {"classify": "Classify: one text column -> one label", "fields": "Any task: input columns -> typed outputs"}
SCORING = {"fields": "each field's own", "judge": "an LLM judge with my rubric", "function": "my own function"}
KEY = "task.fields."
INPUTS, OUTPUTS, NAME, SCORE = f"{KEY}inputs", f"{KEY}outputs", f"{KEY}name", f"{KEY}scoring"
RUBRIC, JUDGE_NAME, FUNCTION, EXTRA = f"{KEY}rubric", f"{KEY}judge_name", f"{KEY}function", f"{KEY}extra"
LOADED = f"{KEY}loaded"  # the file_id of the task file last applied (each upload is applied once)
SOURCE = f"{KEY}source"  # the table the widgets' values belong to: another table starts them afresh
KEEP = (LOADED, f"{KEY}load", f"{KEY}save")  # kept when another table is picked (the uploader's own state)
STRATIFY = "task.stratify"
# What a field keeps beyond its column, kind and metric (descriptions go into the signature).
_INPUT_EXTRA, _OUTPUT_EXTRA = ("description",), ("description", "weight", "keys")


def _kind_key(column: str, key: str = KEY) -> str:
    return f"{key}kind.{column}"


def _metric_key(column: str, key: str = KEY) -> str:
    return f"{key}metric.{column}"


def _tol_key(column: str, key: str = KEY) -> str:
    return f"{key}tol.{column}"


def _keep_valid(key: str, options: list[str]) -> None:
    """Drop a stored multiselect value's items that are no longer options (another table, a column moved)."""
    if key in st.session_state:
        st.session_state[key] = [v for v in st.session_state[key] if v in options]


# A task file on the server --------------------------------------------------------------------------------------


def task_file_ref(stored: TaskRef) -> TaskRef:
    """The "A task file" source: a path on the server; the reference is named by the file's task."""
    path = st.text_input("Task file on the server", value=stored.source if stored.kind == "taskfile" else "",
                         key="task.taskfile.path", placeholder="/path/to/task.toml",
                         help="A TOML task file (docs/tasks.md); its data path is relative to the file. The Task "
                              "page's **Save task file** writes one.").strip()
    if not path:
        st.info("Give the path of a task file on this server.")
        st.stop()
    with studio_errors(stop=True):
        name = read_task_file(path).name
    return TaskRef(kind="taskfile", source=path, name=name)


# The any-task pickers -------------------------------------------------------------------------------------------


def _split_metric(metric: str) -> tuple[str, str]:
    name, _, param = str(metric or "").partition(":")
    return name.strip().lower(), param.strip()


def _suited(kind: str) -> list[str]:
    """The field metrics that suit ``kind``, its default first."""
    from core.scoring import FIELD_METRICS

    return [DEFAULT_METRIC[kind]] + [m for m, fm in FIELD_METRICS.items() if kind in fm.kinds
                                     and m != DEFAULT_METRIC[kind]]


def set_output(column: str, kind: str, metric: str, key: str = KEY) -> None:
    """An output row's widgets (:func:`output_row`, under ``key``) from its kind and metric."""
    name, param = _split_metric(metric)
    st.session_state[_kind_key(column, key)] = kind
    st.session_state[_metric_key(column, key)] = name or DEFAULT_METRIC[kind]
    st.session_state[_tol_key(column, key)] = param


def _set_scoring(metric: str, judge: Any, functions: dict[str, str]) -> None:
    """The task-wide scoring widgets from a task's ``metric`` and ``judge``."""
    from core.program.preview import is_function_metric

    if metric == "judge":
        judge = judge.to_dict() if hasattr(judge, "to_dict") else dict(judge or {})
        st.session_state.update({SCORE: "judge", RUBRIC: judge.get("rubric", ""),
                                 JUDGE_NAME: judge.get("name", "") or "rubric"})
    elif is_function_metric(metric):
        wanted = str(Path(metric.rpartition(":")[0]).expanduser().resolve()) + ":" + metric.rpartition(":")[2]
        shown = next((k for k, v in functions.items() if v == wanted), None)
        if shown is None:
            raise ConfigError(f"The metric function {metric!r} is not one the metric functions folder offers.",
                              "Put the file under GEPA_STUDIO_METRICS_DIR, then pick the function here.")
        st.session_state.update({SCORE: "function", FUNCTION: shown})
    else:
        st.session_state[SCORE] = "fields"


def _apply(spec: dict[str, Any], columns: list[str], metrics_dir: Path | None) -> None:
    """Fill the widgets from a task file's fields (columns, kinds, metrics, scoring, descriptions)."""
    from core.program.preview import check_function_metric, is_function_metric, metric_functions

    ins = [input_from(v) for v in spec["inputs"]]
    outs = [output_from(v) for v in spec["outputs"]]
    if missing := [f.column for f in (*ins, *outs) if f.column not in columns]:
        raise DataError(f"The task file names column(s) the table lacks: {', '.join(map(repr, missing))}.",
                        f"The table's columns are {', '.join(map(repr, columns))}: load the task file with its own "
                        "table, or rename the columns.")
    metric = str(spec.get("metric") or "")
    functions: dict[str, str] = {}
    if is_function_metric(metric):
        check_function_metric(metric, metrics_dir)
        functions = metric_functions(metrics_dir)
    _set_scoring(metric, spec.get("judge"), functions)
    for out in outs:  # a field metric for the whole task is each output's own here
        shared = metric if metric and metric != "judge" and not is_function_metric(metric) else out.metric
        if _split_metric(shared)[0] not in _suited(out.kind) and shared:
            raise ConfigError(f"Output {out.column!r} ({out.kind}) cannot be scored by {shared!r}.",
                              f"Metrics for {out.kind}: {', '.join(_suited(out.kind))}.")
        set_output(out.column, out.kind, shared)
    st.session_state.update({
        NAME: str(spec.get("name") or ""), INPUTS: [f.column for f in ins], OUTPUTS: [f.column for f in outs],
        EXTRA: {"inputs": {f.column: {"description": f.description} for f in ins},
                "outputs": {f.column: {k: v for k, v in f.to_dict().items() if k in _OUTPUT_EXTRA} for f in outs}}})


def _load_task_file(columns: list[str], metrics_dir: Path | None) -> None:
    """"Load a task file": its inputs, outputs, metric and judge applied to this table (once per upload)."""
    loaded = st.file_uploader("Load a task file", type=["toml"], key=f"{KEY}load",
                              help="A task file saved here or written by hand (docs/tasks.md): its inputs, outputs, "
                                   "metric and judge are applied to this table; its data path is not read.")
    if loaded is None or st.session_state.get(LOADED) == loaded.file_id:
        return
    st.session_state[LOADED] = loaded.file_id
    with studio_errors(stop=True), tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (Path(loaded.name).name or "task.toml")
        path.write_bytes(loaded.getvalue())
        _apply(read_task_file(path).spec, columns, metrics_dir)
    st.success(f"Applied the task file `{loaded.name}`.", icon=":material/upload_file:")


def _defaults(saved: dict[str, Any], columns: list[str], metrics_dir: Path | None) -> None:
    """The widgets' first values: the stored task's fields when it read this table, else every column but the last
    as inputs and the last as the output."""
    if not saved:
        st.session_state.setdefault(INPUTS, columns[:-1] or columns)
        st.session_state.setdefault(OUTPUTS, columns[-1:] if len(columns) > 1 else [])
        st.session_state.setdefault(SCORE, "fields")
        return
    if INPUTS in st.session_state:
        return
    ins, outs = [input_from(v) for v in saved["inputs"]], [output_from(v) for v in saved["outputs"]]
    st.session_state[INPUTS] = [f.column for f in ins if f.column in columns]
    st.session_state[OUTPUTS] = [f.column for f in outs if f.column in columns]
    for out in outs:
        set_output(out.column, out.kind, out.metric)
    st.session_state[EXTRA] = {"inputs": {f.column: {"description": f.description} for f in ins},
                               "outputs": {f.column: {k: v for k, v in f.to_dict().items() if k in _OUTPUT_EXTRA}
                                           for f in outs}}
    try:
        from core.program.preview import metric_functions

        functions = metric_functions(metrics_dir) if metrics_dir is not None else {}
        _set_scoring(str(saved.get("metric") or ""), saved.get("judge"), functions)
    except ConfigError:
        st.session_state[SCORE] = "function"  # the function picker says what is wrong


def output_row(table: pd.DataFrame, column: str, key: str = KEY, label: str = "") -> dict[str, Any]:
    """One output row (``label``, else the column's name): its kind and a metric that suits it (numeric: with a
    tolerance); the widgets under ``key``."""
    from core.program.preview import guess_kind
    from core.scoring import FIELD_METRICS

    kind_key, metric_key = _kind_key(column, key), _metric_key(column, key)
    cols = st.columns([2, 2, 2, 2])
    cols[0].markdown(label or f"**{column}**")
    st.session_state.setdefault(kind_key, guess_kind(table[column]))
    kind = cols[1].selectbox("Kind", list(KINDS), key=kind_key, help=KINDS[st.session_state[kind_key]],
                             label_visibility="collapsed")
    options = _suited(kind)
    if st.session_state.get(metric_key) not in options:
        st.session_state[metric_key] = options[0]
    metric = cols[2].selectbox("Metric", options, key=metric_key, format_func=lambda m: FIELD_METRICS[m].display,
                               help=FIELD_METRICS[st.session_state[metric_key]].help, label_visibility="collapsed")
    if FIELD_METRICS[metric].takes_param:
        tol = cols[3].text_input("Tolerance", key=_tol_key(column, key), placeholder="tolerance: 0.01 or 1%",
                                 label_visibility="collapsed", help="Absolute (0.01) or relative (1%); empty: exact.")
        metric = f"{metric}:{tol.strip()}" if tol.strip() else metric
    extra = st.session_state.get(f"{key}extra", {}).get("outputs", {}).get(column, {})
    return {**extra, "column": column, "kind": kind, "metric": "" if metric == DEFAULT_METRIC[kind] else metric}


def _scoring(metrics_dir: Path | None) -> tuple[str, dict[str, Any] | None]:
    """The task-wide metric: "" (each field's own), "judge" with its rubric, or a function's ``/abs/file.py:fn``."""
    from core.program.preview import FUNCTIONS_HINT, metric_functions
    from core.tasks.fields import JudgeSpec

    mode = st.radio("Score each example by", list(SCORING), format_func=SCORING.get, key=SCORE, horizontal=True)
    if mode == "fields":
        return "", None
    if mode == "judge":
        cols = st.columns([3, 1])
        rubric = cols[0].text_area("Rubric", key=RUBRIC, placeholder="What a good answer is; what earns 0 and 1.",
                                   help="An LLM judge scores each answer 0-1 by it and says why (GEPA's feedback).")
        name = cols[1].text_input("Short name", key=JUDGE_NAME, placeholder="rubric",
                                  help='Charts call the metric "judge: <name>".')
        with studio_errors(stop=True):
            judge = JudgeSpec(rubric=rubric, name=name.strip() or "rubric")
        st.caption("The judge's model is picked where the run starts: **Judge model** on Baselines; an "
                   "optimization's judge is its reflection model.")
        return "judge", judge.to_dict()
    if metrics_dir is None:
        st.info(f"No folder of metric functions is configured. {FUNCTIONS_HINT}", icon=":material/folder_off:")
        st.stop()
    with studio_errors(stop=True):
        functions = metric_functions(metrics_dir)
    if not functions:
        st.info(f"No function fn(example, prediction) in the .py files under `{metrics_dir}`.")
        st.stop()
    _keep_valid_choice(FUNCTION, list(functions))
    shown = st.selectbox("Function", list(functions), key=FUNCTION,
                         help=f"Functions in the .py files under {metrics_dir} (GEPA_STUDIO_METRICS_DIR): "
                              "fn(example, prediction) returning a score, (score, feedback) or a dict.")
    return functions[shown], None


def _keep_valid_choice(key: str, options: list[str]) -> None:
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def fields_ref(table: pd.DataFrame, upload: dict[str, str], stored: TaskRef, metrics_dir: Path | None) -> TaskRef:
    """"Any task" on an uploaded table: the pickers, the table checked against them (errors name the rows;
    warnings shown), and the reference ``TaskRef(kind="file", fields=...)``."""
    columns = [str(c) for c in table.columns]
    stem = Path(upload["filename"]).stem
    keep = stored.kind == "file" and stored.source == upload["path"] and bool(stored.fields)
    if st.session_state.get(SOURCE) != upload["path"]:
        for key in [k for k in st.session_state if str(k).startswith(KEY) and k not in KEEP]:
            del st.session_state[key]
        st.session_state[SOURCE] = upload["path"]
    _load_task_file(columns, metrics_dir)
    _defaults(json.loads(stored.fields) if keep else {}, columns, metrics_dir)
    st.session_state.setdefault(NAME, stored.name if keep else "")
    name = st.text_input("Task name", key=NAME, placeholder=stem, help="Names the MLflow experiment.")
    cols = st.columns(2)
    _keep_valid(INPUTS, columns)
    inputs = cols[0].multiselect("Input columns", columns, key=INPUTS, help="What the program reads.")
    options = [c for c in columns if c not in inputs]
    _keep_valid(OUTPUTS, options)
    outputs = cols[1].multiselect("Output columns", options, key=OUTPUTS, help="What the program answers: each "
                                  "output has a kind (how it is parsed) and a metric (how it is scored).")
    if not inputs or not outputs:
        st.info("Pick at least one input column and one output column.")
        st.stop()
    st.caption("Each output: its kind and its metric.")
    outs = [output_row(table, column) for column in outputs]
    metric, judge = _scoring(metrics_dir)
    described = st.session_state.get(EXTRA, {}).get("inputs", {})
    ins = [{"column": c, **{k: v for k, v in described.get(c, {}).items() if k in _INPUT_EXTRA and v}}
           for c in inputs]
    with studio_errors(stop=True):
        warnings = validate_fields(table, [input_from(i) for i in ins], [OutputSpec.from_dict(o) for o in outs])
    for warning in warnings:
        st.warning(warning, icon=":material/warning:")
    fields = {"inputs": ins, "outputs": outs, "metric": metric, "judge": judge}
    return TaskRef(kind="file", source=upload["path"], name=name.strip() or stem, fields=json.dumps(fields))


# Sampling and the overview --------------------------------------------------------------------------------------


def stratify_picker(table: pd.DataFrame, stored: SampleSpec) -> str:
    """The column rows are stratified by ("" = none), for a task without a label output."""
    options = ["", *[str(c) for c in table.columns]]
    st.session_state.setdefault(STRATIFY, stored.stratify if stored.stratify in options else "")
    if st.session_state[STRATIFY] not in options:
        st.session_state[STRATIFY] = ""
    return st.selectbox("Stratify by", options, key=STRATIFY, format_func=lambda c: c or "(none: rows at random)",
                        help="Each value of this column keeps its share of the rows in every split.")


def checked_metric(task: Task, metrics_dir: Path | None, programs_dir: Path | None = None) -> str:
    """The task's metric name, after checking that a function metric lies under the operator's folder (a task run
    on your own program: the program under the programs folder, its metric under either folder)."""
    from core.program.pick import check_program
    from core.program.preview import check_function_metric, metric_name

    if task.program:
        check_program(task.program, programs_dir)
    try:
        check_function_metric(task.metric, metrics_dir)
    except ConfigError:
        if not (task.program and programs_dir is not None):
            raise
        check_function_metric(task.metric, programs_dir)
    return metric_name(task)


def counts(first: tuple[str, int], tables: dict[str, pd.DataFrame], sizes: dict[str, int]) -> None:
    """The Task page's row of counts: ``first`` (labels, or outputs), the rows available in the source tables, the
    train / validation and test sizes."""
    cols = st.columns(4)
    cols[0].metric(*first)
    cols[1].metric("Rows available", f"{sum(len(t) for t in tables.values()):,}",
                   help=" + ".join(f"{len(t):,} in the {name}" for name, t in tables.items()))
    cols[2].metric("Train / validation", f"{sizes['train']} / {sizes['val']}")
    cols[3].metric("Test", sizes["test"])


def overview(task: Task, splits: Splits, tables: dict[str, pd.DataFrame], sample: SampleSpec, data: str) -> None:
    """A task beyond classification: counts, a preview of its columns, its signature and one example's full prompt,
    and its task file to save. ``tables``: the source tables by name (train table, test table)."""
    from core.program.preview import task_preview

    counts(("Outputs", len(task.outputs)), tables, splits.sizes())
    st.subheader("Preview")
    shown = list(dict.fromkeys([*task.columns, *([sample.stratify] if sample.stratify else [])]))
    tabs = st.tabs(["Train", "Validation", "Test", "Source table"])
    for tab, frame in zip(tabs, (splits.train, splits.val, splits.test, tables["train table"].head(500)),
                          strict=True):
        with tab:
            if frame is None or frame.empty:
                st.caption("No validation split: GEPA scores candidates on the train examples.")
            else:
                st.dataframe(frame[[c for c in shown if c in frame.columns]], hide_index=True)
    if task.program:  # your own program: its prompts are its file's, and only its jobs run it (ui.task_program)
        return
    st.subheader("The program")
    row = (splits.train if not splits.train.empty else splits.test).iloc[0].to_dict()
    with studio_errors():
        preview = task_preview(task, row)
        st.caption("Signature: the inputs and the typed outputs")
        st.code(preview["signature"], language=None, wrap_lines=True)
        st.caption("The full prompt of the first train example: every message the model is sent")
        st.code(preview["prompt"], language=None, wrap_lines=True)
    st.download_button("Save task file", task_file_text(task, data=data, sample=sample), key=f"{KEY}save",
                       file_name=f"{task.name}.toml", mime="application/toml", icon=":material/download:",
                       help="A TOML file with these fields, the metric and the sample sizes: load it here on "
                            "another table, or run it with `python -m core baseline --task-file FILE`.")

