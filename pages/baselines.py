"""Baselines: several models, unoptimized, on the same test examples; a background job with live progress."""

import streamlit as st

from core.analytics import charts
from core.config.errors import ConfigError
from core.lm.models import PROVIDER_HELP, key_present
from core.program.pick import check_program
from core.tracking.runs import chart_frame, latest_per_label, module_name, with_spend
from ui import auth, cache, routing, state
from ui.failures import FAILURE_COLUMN_CONFIG, degraded_warning, failure_table
from ui.jobs import baseline_progress, job_picker, live_panel
from ui.widgets import run_column_config, studio_errors

TABLE_ROWS = 500  # the newest baseline runs in the table (History pages through all of them)

routing.require_app(__file__)
st.title("Baselines")
st.write("Score each model's unoptimized prompt on the task's test examples: where the student starts, and "
         "what the expensive models reach.")

ref, sample = state.task_ref(), state.sample()
st.caption(f"Task **{ref.task_name}** · {sample.test_per_label} test examples per label · seed {sample.seed}")
st.page_link("pages/task.py", label="Change the task", icon=":material/dataset:")

with studio_errors(stop=True):
    catalog = cache.catalog()
names = catalog.names()
chosen = st.multiselect("Models", names, default=[n for n in state.compare_models() if n in names],
                        key="baselines.models.w", placeholder="Pick the models to compare")
state.set_compare_models(chosen)
for name in chosen:
    spec = catalog.models[name]
    if not key_present(spec):
        st.warning(f"{name}: `{spec.api_key_env}` is not set, so its baseline will fail. "
                   f"{PROVIDER_HELP.get(spec.provider, '')}", icon=":material/key:")

judge = None  # a task scored by a rubric: the judge's model, picked here (core refuses such a task without one)
task = None  # read when it may be judged or run your own program (classification never is: not read)
refused = False  # your own program from outside the operator's folder (a link's): never started from here
with studio_errors():
    if bool(ref.fields) or ref.kind not in ("demo", "pubmed", "file"):
        task = cache.task_tables(ref.to_dict())[0]
    if task is not None and task.program:
        try:
            check_program(task.program, cache.settings().programs_dir)
        except ConfigError:
            refused = True
            raise
    if task is not None and task.metric == "judge":
        fallback = state.reflection() if state.reflection() in names else None
        judge_name = st.selectbox("Judge model", names, index=names.index(fallback) if fallback else None,
                                  key="baselines.judge.w", placeholder="Pick the model that scores by the rubric",
                                  help="The task is scored by an LLM judge with its rubric: this model scores every "
                                       "answer 0-1 and says why (usually a strong model, e.g. the reflection model).")
        judge = catalog.get(judge_name) if judge_name else None
judged = {"judge": judge} if judge is not None else {}  # only a judged task's job carries one

with st.expander("Options"):
    cols = st.columns(3)
    module = "predict"  # your own program: its predictors as they are
    if task is not None and task.program:
        cols[0].caption("Your program keeps its own predictors and instructions.")
    else:
        module = cols[0].segmented_control("Program", ["predict", "cot"], default="predict", required=True,
                                           key="baselines.module", persist_state="session",
                                           format_func={"predict": "Predict", "cot": "Chain of thought"}.get)
    threads = cols[1].number_input("Parallel calls", min_value=1, max_value=64, value=8, key="baselines.threads",
                                   persist_state="session")
    reuse = cols[2].toggle("Reuse cached answers", value=True, key="baselines.cache", persist_state="session",
                           help="Identical calls are answered from DSPy's cache (and cost nothing).")

if st.button("Run baselines", key="baselines.start", type="primary", icon=":material/play_arrow:",
             disabled=not chosen or refused):
    with studio_errors():
        job_id = cache.job_manager().submit_baselines(ref, sample, [catalog.get(n) for n in chosen], module=module,
                                                     threads=int(threads), cache=bool(reuse),
                                                     started_by=auth.current_user(), **judged)
        state.set_baseline_job(job_id)
        cache.clear_runs()
if not chosen:
    st.caption("Pick at least one model (or choose them on the Models page).")

st.subheader("Progress")
job_picker("baseline", state.baseline_job(), key="baselines.job.w", on_pick=state.set_baseline_job)
if job_id := state.baseline_job():
    if not live_panel(job_id, baseline_progress):
        state.set_baseline_job(None)  # e.g. the data dir changed: say so once, then forget it
else:
    st.caption("No baseline job in this session yet.")

st.subheader("Results")
with studio_errors(stop=True):
    runs = cache.runs_table()
only_task = st.toggle(f"Only task {ref.task_name}", value=True, key="baselines.only_task", persist_state="session")
baselines = runs[runs["kind"] == "baseline"] if not runs.empty else runs
if only_task and not baselines.empty:
    baselines = baselines[baselines["task"] == ref.task_name]
if baselines.empty:
    st.info("No baseline runs yet: pick models above and press **Run baselines**.")
    st.stop()
frame = latest_per_label(charts.with_failures(chart_frame(baselines), baselines))
with studio_errors():
    for row in frame[frame["degraded"]].to_dict("records"):
        degraded_warning(row, cache.run_tags(str(row["run_id"])))
if not frame.empty:
    st.plotly_chart(charts.accuracy_bars(frame), key="baselines.chart.accuracy")
columns = ["start_time", "model", "module", "task", "status", "degraded", "accuracy", "accuracy_ci_low",
           "accuracy_ci_high", "failed", "failure_rate", "failures by kind", "macro_f1", "n", "spent_usd",
           "cost_per_1k", "p50_latency_s", "input_tokens", "output_tokens", "run_id"]
if "partial" in baselines:  # killed or stopped before its last example: resumable, not a final score
    columns.insert(columns.index("status") + 1, "partial")
for name in ("cached_calls", "retried"):  # answers from the cache, 429s / 5xx answered on a retry (newer runs)
    if name in baselines:
        columns.insert(columns.index("spent_usd") + 1, name)
table = failure_table(with_spend(baselines.head(TABLE_ROWS)))[columns]
table["module"] = table["module"].map(module_name)
st.dataframe(
    table, hide_index=True, key="baselines.table",
    column_config=run_column_config(
        module=st.column_config.TextColumn("program", help="The program kind: Predict or CoT (chain of thought)."),
        accuracy_ci_low=st.column_config.NumberColumn("CI low", format="percent"),
        accuracy_ci_high=st.column_config.NumberColumn("CI high", format="percent"),
        p50_latency_s=st.column_config.NumberColumn("p50 latency (s)", format="%.2f"),
        spent_usd=st.column_config.NumberColumn("spend", format="$%.4f", help="What the provider billed this run: "
                                                "answers from the cache cost nothing."),
        cost_per_1k=st.column_config.NumberColumn("cost per 1k predictions", format="$%.4f", help="Cost of the "
                                                  "program: tokens × price, answers from the cache at list price."),
        cached_calls=st.column_config.NumberColumn("from cache", format="%d", help="LM calls answered from the "
                                                   "response cache of this server: nothing spent on them."),
        retried=st.column_config.NumberColumn("retried", format="%d", help="Calls the provider first refused (429, "
                                              "5xx) and answered on a retry: not failures."),
        **FAILURE_COLUMN_CONFIG,
    ),
)
if len(baselines) > TABLE_ROWS:
    st.caption(f"The newest {TABLE_ROWS:,} of {len(baselines):,} baseline runs; History lists every run.")
st.page_link("pages/compare.py", label="Compare with optimized programs", icon=":material/bar_chart:")
