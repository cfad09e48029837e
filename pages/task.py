"""Task: the data (demo, PubMed, a shipped task, a task file, or an uploaded table read as classification or as any
task: input columns -> typed outputs + a metric) and its sample sizes (per label, or rows)."""

from pathlib import Path
from typing import NoReturn

import streamlit as st

from core.analytics import charts
from core.config.errors import StudioError
from core.tasks import (
    LABEL_OPTIONS,
    SOURCES,
    SampleSpec,
    TaskRef,
    default_instruction,
    guess_columns,
    label_counts,
    save_upload,
    validate_table,
)
from core.tracking.runs import split_label_counts
from ui import cache, routing, state, task_fields, task_program
from ui.widgets import show_error, studio_errors

KINDS = list(SOURCES)

routing.require_app(__file__)
st.title("Task")
st.write("What the models do. Every baseline and optimization in this session uses the task and sample "
         "chosen here; the same sizes and seed always give the same examples.")

stored_ref, stored_sample = state.task_ref(), state.sample()
kind = st.radio("Data", KINDS, index=KINDS.index(stored_ref.kind), format_func=lambda k: SOURCES[k].title,
                horizontal=True, key="task.kind.w")

candidate: TaskRef
st.caption(SOURCES[kind].description)
if kind == "demo":
    candidate = TaskRef(kind="demo")
elif kind == "pubmed":
    same = stored_ref.kind == "pubmed"
    source = st.text_input("Local PubMed file (optional)", value=stored_ref.source if same else "",
                           key="task.pubmed.source", placeholder="empty: download from the Hugging Face hub")
    test_source = st.text_input("Separate test file (optional)", value=stored_ref.test_source if same else "",
                                key="task.pubmed.test",
                                placeholder="empty: the hub's test split, or the rest of the file")
    candidate = TaskRef(kind="pubmed", source=source.strip(), test_source=test_source.strip())
    if candidate != stored_ref and not st.button("Load PubMed", key="task.pubmed.load", type="primary",
                                                 icon=":material/download:"):
        st.info("Press **Load PubMed** to read the data (a download can take a while the first time).")
        st.stop()
elif kind == "taskfile":
    candidate = task_program.on_task_file(task_fields.task_file_ref(stored_ref), stored_ref)
elif kind != "file":  # a task that ships with the project: nothing to pick (its description is above)
    candidate = TaskRef(kind=kind)
else:
    uploaded = st.file_uploader("A CSV, TSV, Parquet or PubMed RCT .txt file", key="task.file.w",
                                type=["csv", "tsv", "txt", "parquet", "gz", "xlsx", "xls", "zip"])
    if uploaded is not None:
        previous = state.upload()
        if previous is None or previous.get("file_id") != uploaded.file_id:
            with studio_errors(stop=True):
                path = save_upload(uploaded.getvalue(), uploaded.name, cache.settings())
            state.set_upload({"file_id": uploaded.file_id, "filename": uploaded.name, "path": str(path)})
    current = state.upload()
    if current is None and stored_ref.kind == "file":
        current = {"file_id": "", "filename": Path(stored_ref.source).name, "path": stored_ref.source}
    if current is None:
        st.info("Upload a table: one text column and one label column, or input columns and output columns.")
        st.stop()
    st.caption(f"File: `{current['filename']}` (kept in the data dir so background jobs can reread it)")
    with studio_errors(stop=True):
        table = cache.read_upload(current["path"])
    data_name = current["filename"]
    same_file = stored_ref.kind == "file" and stored_ref.source == current["path"]
    modes = dict(task_fields.MODES)
    if cache.settings().programs_dir is not None:  # the operator's folder of programs: none offered without one
        modes[task_program.MODE] = task_program.MODE_LABEL
    stored_mode = ("classify" if not (same_file and stored_ref.fields) else
                   task_program.MODE if task_program.saved_program(stored_ref) else "fields")
    mode = st.radio("The task", list(modes), format_func=modes.get, horizontal=True, key="task.file.mode",
                    index=list(modes).index(stored_mode) if stored_mode in modes else 1)
    if task_program.MODE not in modes:
        st.caption(task_program.ENABLE)
if kind == "file" and mode == task_program.MODE:
    candidate = task_program.file_ref(table, current, stored_ref)
elif kind == "file" and mode == "fields":
    candidate = task_fields.fields_ref(table, current, stored_ref, cache.settings().metrics_dir)
elif kind == "file":
    columns = [str(c) for c in table.columns]
    guess_text, guess_label = guess_columns(table)
    keep = stored_ref.kind == "file" and stored_ref.source == current["path"]
    text_default = stored_ref.text_column if keep and stored_ref.text_column in columns else guess_text
    label_default = stored_ref.label_column if keep and stored_ref.label_column in columns else guess_label
    cols = st.columns(3)
    text_column = cols[0].selectbox("Text column", columns, index=columns.index(text_default), key="task.file.text")
    label_column = cols[1].selectbox("Label column", columns, index=columns.index(label_default),
                                     key="task.file.label")
    name = cols[2].text_input("Task name", value=stored_ref.name if keep else "", key="task.file.name",
                              placeholder=Path(current["filename"]).stem, help="Names the MLflow experiment.")
    cols = st.columns(2)
    merge_option, drop_option = LABEL_OPTIONS["merge_similar_labels"], LABEL_OPTIONS["drop_missing_labels"]
    merge = cols[0].checkbox(merge_option.box, key="task.file.merge",
                             value=stored_ref.merge_similar_labels if keep else False,
                             help="Labels that look alike ('Positive' / 'POSITIVE', a label with an invisible or "
                                  "right-to-left character, 1 / 1.0 / 01) become one label: the most frequent "
                                  "spelling. Off: those a reader cannot tell apart are an error, numbers a warning. "
                                  f"Command line: `{merge_option.flag}`.")
    drop = cols[1].checkbox(drop_option.box, key="task.file.dropna",
                            value=stored_ref.drop_missing_labels if keep else False,
                            help="Off: labels such as 'NaN', 'null', 'None', 'N/A', '-' are kept as classes "
                                 f"(with a warning). Command line: `{drop_option.flag}`.")
    with studio_errors(stop=True):
        warnings = validate_table(table, text_column=text_column, label_column=label_column,
                                  merge_similar_labels=merge, drop_missing_labels=drop)
    for warning in warnings:
        st.warning(warning, icon=":material/warning:")
    candidate = TaskRef(kind="file", source=current["path"], text_column=text_column, label_column=label_column,
                        name=name.strip() or Path(current["filename"]).stem, merge_similar_labels=merge,
                        drop_missing_labels=drop)

def still_selected(exc: StudioError) -> NoReturn:
    """Show why the candidate cannot be used, say what stays selected, and end the page."""
    show_error(exc)
    st.caption(f"Still selected: **{stored_ref.task_name}** ({stored_sample.train_per_label} train / "
               f"{stored_sample.val_per_label} validation / {stored_sample.test_per_label} test).")
    st.stop()


try:
    task, full, test_table = cache.task_tables(candidate.to_dict())
    scored_by = "" if task.is_classification else task_fields.checked_metric(task, cache.settings().metrics_dir,
                                                                               cache.settings().programs_dir)
except StudioError as exc:
    still_selected(exc)
per = "per label" if task.label_output is not None else "rows"
st.subheader("Sample per label" if per == "per label" else "Sample (rows in all)")
cols = st.columns(4)
train = cols[0].number_input("Train", min_value=1, value=stored_sample.train_per_label, step=1, key="task.train",
                             help=f"Examples ({per}) GEPA learns from (its reflection minibatches come from here).")
val = cols[1].number_input("Validation", min_value=0, value=stored_sample.val_per_label, step=1, key="task.val",
                           help=f"Examples ({per}) GEPA scores candidates on; 0 means it uses the train examples.")
test = cols[2].number_input("Test", min_value=1, value=stored_sample.test_per_label, step=1, key="task.test",
                            help=f"Examples ({per}) every baseline and the before/after evaluation are scored on.")
seed = cols[3].number_input("Seed", min_value=0, value=stored_sample.seed, step=1, key="task.seed")
stratify = task_fields.stratify_picker(full, stored_sample) if per == "rows" else ""

try:
    spec = SampleSpec(int(train), int(val), int(test), int(seed), stratify=stratify)
    task, splits = cache.prepared(candidate.to_dict(), spec.to_dict())
except StudioError as exc:
    still_selected(exc)

state.set_task(candidate, spec)
sizes = splits.sizes()
over = f"over {len(task.labels)} labels" if task.is_classification else f"scored by {scored_by}"
st.success(f"Using **{task.name}** for baselines and optimization: {sizes['train']} train, {sizes['val']} validation, "
           f"{sizes['test']} test examples {over}.", icon=":material/check_circle:")
for note in splits.notes:
    st.warning(note, icon=":material/warning:")

# The "all rows" chart counts exactly the rows the metric counts: with a separate test table, both tables.
source_tables = {"train table": full} if test_table is None else {"train table": full, "test table": test_table}
if not task.is_classification:  # any task: its columns, signature and prompt instead of label charts
    if task.metric == "judge":
        st.caption("Scored by an LLM judge: pick its model on Baselines (an optimization's judge is its reflection "
                   "model).")
    task_fields.overview(task, splits, source_tables, spec, data_name if kind == "file" else Path(task.source).name)
    if task.program:
        task_program.overview(task)
    st.stop()
rows_available = sum(len(t) for t in source_tables.values())
task_fields.counts(("Labels", len(task.labels)), source_tables, sizes)

chart_cols = st.columns(2)
split_tables = {"train": splits.train, "validation": splits.val, "test": splits.test}
chart_cols[0].plotly_chart(charts.label_distribution(split_label_counts(split_tables, task.label_column),
                                                     title="Sampled examples per label"), key="task.chart.splits")
if test_table is None:
    all_rows, all_title = label_counts(full, task.label_column), f"All {rows_available:,} rows per label"
else:
    all_rows = split_label_counts(source_tables, task.label_column)
    all_title = f"All {rows_available:,} rows per label (train and test tables)"
chart_cols[1].plotly_chart(charts.label_distribution(all_rows, title=all_title), key="task.chart.all")

st.subheader("Preview")
tabs = st.tabs(["Train", "Validation", "Test", "Source table"])
shown = [task.text_column, task.label_column]
for tab, frame in zip(tabs, (splits.train, splits.val, splits.test, full.head(500)), strict=True):
    with tab:
        if frame is None or frame.empty:
            st.caption("No validation split: GEPA scores candidates on the train examples.")
        else:
            st.dataframe(frame[shown], hide_index=True)
with st.expander("Starting instruction (what GEPA begins from)"):
    st.code(task.instruction or default_instruction(task), language=None, wrap_lines=True)
