"""Home: where things are stored, which provider keys are present, counts, where to start, where experiments live
and where jobs run."""

import streamlit as st

from core.config.settings import (
    PROVIDERS,
    ROOT_ENV,
    check_experiment_root,
    get_secret,
    save_experiment_root,
    saved_experiment_root,
)
from ui import cache, routing, state
from ui.cluster import where_jobs_run
from ui.widgets import studio_errors

routing.require_app(__file__)
st.title("GEPA Studio")
st.write(
    "Make a cheap model do the work of an expensive one, and see honestly whether it did: run baselines, "
    "let DSPy's GEPA rewrite the student's prompt, then compare accuracy and cost and read the prompt diff."
)

st.subheader("Start here")
steps = st.columns(3)
with steps[0], st.container(border=True):
    st.markdown("**1. Models**  \nPick a cheap *student*, a strong *reflection* model and models to compare.")
    st.page_link("pages/models.py", label="Choose models", icon=":material/smart_toy:")
with steps[1], st.container(border=True):
    st.markdown("**2. Task**  \nThe bundled demo, PubMed sentence roles, or your own CSV / Parquet.")
    st.page_link("pages/task.py", label="Choose the task", icon=":material/dataset:")
with steps[2], st.container(border=True):
    st.markdown("**3. Run**  \nBaselines of several models, then a GEPA optimization of the student.")
    st.page_link("pages/baselines.py", label="Run baselines", icon=":material/straighten:")
    st.page_link("pages/optimize.py", label="Optimize a prompt", icon=":material/auto_fix_high:")

ref, spec = state.task_ref(), state.sample()
st.caption(
    f"You are working on: student **{state.student() or 'not chosen'}**, reflection "
    f"**{state.reflection() or 'not chosen'}**, task **{ref.task_name}** ({spec.train_per_label} train / "
    f"{spec.val_per_label} validation / {spec.test_per_label} test per label, seed {spec.seed}). "
    "Kept for this browser, and in the address bar: bookmark or share the link to come back to it."
)

left, right = st.columns(2)
with left:
    st.subheader("Provider keys")
    present = cache.credentials()
    for provider, ok in present.items():
        status = ":green[:material/check_circle: present]" if ok else ":orange[:material/cancel: missing]"
        alt = " or the Databricks SDK's profile / OAuth" if provider == "databricks" else ""  # core.config.databricks
        st.markdown(f"{PROVIDERS[provider].title} (`{PROVIDERS[provider].key_env}`{alt}): {status}")
    st.caption("Keys are read from the environment or `.streamlit/secrets.toml` when a call is made; "
               "their values are never shown or stored. Local OpenAI-compatible servers need none.")

with right:
    st.subheader("Runs and jobs")
    with studio_errors():
        runs = cache.runs_table()
        counts = runs["kind"].value_counts() if not runs.empty else {}
        cols = st.columns(4)
        cols[0].metric("Baselines", int(counts.get("baseline", 0)))
        cols[1].metric("Optimizations", int(counts.get("optimization", 0)))
        cols[2].metric("Evaluations", int(counts.get("evaluation", 0)))
        jobs = cache.jobs_table()
        # A group (a sweep, a repeat of seeds) is its children, counted each.
        work = jobs[~jobs["kind"].isin(["sweep", "repeat"])] if not jobs.empty else jobs
        active = int(work["state"].isin(["queued", "running"]).sum()) if not work.empty else 0
        cols[3].metric("Active jobs", active, help=f"Running or queued; {len(work)} jobs in total (a sweep's "
                                                   "jobs counted one by one)")
    where = cache.settings()
    st.markdown(f"Runs are MLflow runs in `{where.tracking_uri}`; uploads, jobs and the model catalog "
                f"live in `{where.data_dir}`.")
    st.page_link("pages/compare.py", label="Compare runs", icon=":material/bar_chart:")
    st.page_link("pages/history.py", label="All runs and jobs", icon=":material/history:")

st.subheader("Where experiments live")
root = where.experiment_root
st.markdown(f"Each task's runs are the MLflow experiment `{root}/<task>`; Compare and History read the experiments "
            "under this root only.")
with studio_errors():
    check_experiment_root(root, where.tracking_uri)  # a bad root is said here, before a run is refused for it
if get_secret(ROOT_ENV):
    st.caption(f"`{ROOT_ENV}` is set in the environment or secrets.toml: it wins over a root saved here.")
else:
    with st.form("experiment_root", border=False):
        value = st.text_input(
            "Experiment root", value=saved_experiment_root(where.data_dir) or "", key="home_experiment_root",
            placeholder="gepa-studio (blank); on Databricks /Users/<you>/gepa-studio or /Shared/gepa-studio",
            help="The folder (or name prefix) of every experiment the studio makes. A Databricks tracking server "
                 "keeps experiments only in workspace folders. Runs made under another root stay there.")
        if st.form_submit_button("Save"):
            with studio_errors():
                save_experiment_root(where.data_dir, value, where.tracking_uri)
                cache.clear_caches()  # settings, the run store and the job manager are built again with the root
                st.rerun()

where_jobs_run()
