"""The one place that caches: stores and clients as resources, queries as data with a short TTL.

``cache_resource`` holds objects shared by every session (settings, the MLflow-backed run store,
the job manager); they are never mutated here. ``cache_data`` getters return DataFrames and plain
dicts (a fresh copy per call). The sidebar's Refresh button calls :func:`clear_caches`.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from core.config.errors import StudioError
from core.config.settings import Settings, credential_status, load_settings
from core.jobs import JobManager
from core.lm.models import ModelCatalog, ModelSpec
from core.tracking.store import RunStore

RUNS_TTL_S = 10  # a finished background job shows up within this long (Refresh: at once)
# A tracking server answers the whole run table through MLflow's search (seconds per 1,000 runs; a SQL store is read
# directly in ~0.1 s per 1,000): ask it less often. Refresh, and a job's end, still clear it at once.
REMOTE_RUNS_TTL_S = 120
REMOTE_SCHEMES = ("http:", "https:", "databricks")
JOBS_TTL_S = 2
ARTIFACT_TTL_S = 600  # artifacts of a finished run never change


# Resources ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """Where runs, jobs and the model catalog live (read once from the environment / secrets.toml)."""
    return load_settings().ensure()


@st.cache_resource(show_spinner="Opening the run store…")
def run_store() -> RunStore:
    return RunStore(settings())


@st.cache_resource(show_spinner=False)
def job_manager() -> JobManager:
    return JobManager(settings())


def clear_caches() -> None:
    """Forget every cached query and resource (the Refresh button)."""
    st.cache_data.clear()
    st.cache_resource.clear()


def clear_runs() -> None:
    """Forget the cached run and job tables (after a job finishes)."""
    _runs_table.clear()
    _remote_runs_table.clear()
    jobs_table.clear()


def credentials() -> dict[str, bool]:
    """Provider → is its key present? (Never the value.)"""
    return credential_status()


def catalog() -> ModelCatalog:
    """The shared model catalog, read fresh: another session may have just added a model."""
    return ModelCatalog.load(settings().catalog_path)


# Runs and jobs -----------------------------------------------------------------------------


def runs_table(kind: str | None = None) -> pd.DataFrame:
    """Every run (or those of one kind), newest first, none left out; columns ``core.tracking.store.RUN_COLUMNS``."""
    remote = settings().tracking_uri.startswith(REMOTE_SCHEMES)
    return _remote_runs_table(kind) if remote else _runs_table(kind)


@st.cache_data(ttl=RUNS_TTL_S, show_spinner="Loading runs…")
def _runs_table(kind: str | None) -> pd.DataFrame:
    return run_store().list_runs(kind=kind)  # type: ignore[arg-type]


@st.cache_data(ttl=REMOTE_RUNS_TTL_S, show_spinner="Loading runs from the tracking server…")
def _remote_runs_table(kind: str | None) -> pd.DataFrame:
    return run_store().list_runs(kind=kind)  # type: ignore[arg-type]


@st.cache_data(ttl=JOBS_TTL_S, show_spinner=False)
def jobs_table() -> pd.DataFrame:
    return job_manager().frame()


@st.cache_data(ttl=60, show_spinner="Loading the run…")
def run_detail(run_id: str) -> dict[str, Any]:
    """Params, metrics, tags, records, program, prompt and per-label table of one run, plus ``info``."""
    from core.evaluation.baseline import load_run_detail

    detail = load_run_detail(run_store(), run_id)
    run = detail.pop("run")
    detail["info"] = {
        "run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status,
        "start_time": run.info.start_time, "end_time": run.info.end_time,
    }
    detail["artifacts"] = run_store().list_artifacts(run_id)
    return detail


@st.cache_data(ttl=30, show_spinner=False)
def run_tags(run_id: str) -> dict[str, str]:
    return dict(run_store().get_run(run_id).data.tags)


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner=False)
def artifact_csv(run_id: str, name: str) -> pd.DataFrame:
    return run_store().read_csv(run_id, name)


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner=False)
def artifact_json(run_id: str, name: str) -> Any:
    return run_store().read_json(run_id, name)


@st.cache_data(ttl=30, show_spinner=False)
def run_metrics(run_id: str) -> dict[str, float]:
    return dict(run_store().get_run(run_id).data.metrics)


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner=False)
def confusion(run_id: str) -> pd.DataFrame:
    """A run's confusion.csv as logged: gold labels as the index, predicted labels as the columns."""
    return run_store().read_csv(run_id, "confusion.csv", index_col=0)


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Reading GEPA's search…")
def search_record(run_id: str, status: str) -> dict[str, Any] | None:
    """An optimization's search.json (core.optimize.search's SearchRecord), or None when it has none (older runs, or
    one still running). ``status`` is part of the cache key: a run that ends is read again."""
    if "search.json" not in run_store().list_artifacts(run_id):
        return None
    return dict(run_store().read_json(run_id, "search.json"))


@st.cache_data(ttl=JOBS_TTL_S, show_spinner=False)
def live_search_record(job_id: str) -> dict[str, Any] | None:
    """A running optimization's search so far: the copy GEPA's log_dir keeps (core.jobs.kinds puts log_dir at
    ``<job dir>/gepa``), None before its first iteration ends."""
    try:
        return dict(json.loads((job_manager().job_dir(job_id) / "gepa" / "search.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # none yet, or caught mid-write on a filesystem without atomic renames
        return None


@st.cache_data(ttl=60, show_spinner=False)
def trace_counts(run_id: str) -> dict[str, int]:
    """MLflow traces of a run per role (core.tracking.tracing.trace_counts)."""
    from core.tracking.tracing import trace_counts as count

    return dict(count(run_store(), run_id))


@st.cache_data(ttl=60, show_spinner=False)
def predictor_calls(run_id: str) -> list[dict]:
    """Your own program's traced calls of a run by predictor and role (core.tracking.tracing.predictor_calls)."""
    from core.tracking.tracing import predictor_calls as by_predictor

    return by_predictor(run_store(), run_id)


@st.cache_data(ttl=ARTIFACT_TTL_S, max_entries=4, show_spinner="Building the report…")
def report_html(run_ids: tuple[str, ...], references: tuple[tuple[str, str], ...] = ()) -> str:
    """One self-contained HTML report of these runs (core.report.build_report; ``references``: (optimization,
    break-even reference) pairs as picked on Compare): built when asked, kept a while."""
    from core.report import build_report

    return build_report(run_store(), list(run_ids), references=dict(references))


# Tasks -------------------------------------------------------------------------------------


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Reading the file…")
def read_upload(path: str) -> pd.DataFrame:
    from core.tasks import read_table

    return read_table(path)


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Loading the task…")
def task_tables(ref: dict[str, Any]) -> tuple[Any, pd.DataFrame, pd.DataFrame | None]:
    """(Task, cleaned train table, optional test table) of a TaskRef dict."""
    from core.tasks import TaskRef, load_tables

    return load_tables(TaskRef.from_dict(ref), settings())


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Sampling the splits…")
def prepared(ref: dict[str, Any], sample: dict[str, Any]) -> tuple[Any, Any]:
    """(Task, Splits) of a TaskRef dict and a SampleSpec dict."""
    from core.tasks import SampleSpec, TaskRef, prepare

    return prepare(TaskRef.from_dict(ref), SampleSpec.from_dict(sample), settings())


# Models and optimization -------------------------------------------------------------------


@st.cache_data(ttl=3600, show_spinner="Looking up prices…")
def price_of(spec: dict[str, Any]) -> dict[str, Any]:
    """{input_per_m, output_per_m, source} of a ModelSpec dict."""
    from core.lm.models import resolve_price

    price = resolve_price(ModelSpec.from_dict(spec))
    return {"input_per_m": price.input_per_m, "output_per_m": price.output_per_m, "source": price.source}


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Planning…")
def plan_for(config: dict[str, Any]) -> Any:
    """The Plan of an OptimizeConfig dict (task, splits, estimate): shown on the page, then submitted as is.

    Raises ConfigError if the config cannot run on its task."""
    from core.optimize import OptimizeConfig, plan_optimization

    return plan_optimization(OptimizeConfig.from_dict(config), settings())


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner=False)
def rendered_prompt(program_json: str, text: str) -> list[dict[str, Any]]:
    """The messages a saved program sends for one input text."""
    from core.program.program import program_from_dict, render_prompt

    program, task = program_from_dict(json.loads(program_json))
    return render_prompt(program, {task.input_field: text})


# The original notebook's preset (ui/notebook.py) -----------------------------------------------


@st.cache_data(ttl=ARTIFACT_TTL_S, show_spinner="Reading PubMed and drawing the notebook's sample…")
def notebook_plan(config: dict[str, Any]) -> tuple[Any, dict[str, str] | None]:
    """(Plan, None), or (None, {message, hint}) when it cannot be planned: kept too, so that an unreachable hub is
    not asked again on every rerun (Refresh asks again)."""
    from core.optimize import OptimizeConfig
    from core.presets import notebook  # DSPy and the readers: loaded with the Optimize page, not at start-up

    try:
        return notebook.plan(OptimizeConfig.from_dict(config), settings()), None
    except StudioError as exc:
        return None, {"message": exc.message, "hint": exc.hint or ""}


@st.cache_data(ttl=RUNS_TTL_S, show_spinner=False)
def notebook_reproductions(task: str) -> pd.DataFrame:
    """The notebook reproductions among the runs of ``task`` (core.presets.notebook.reproductions)."""
    from core.presets import notebook

    return notebook.reproductions(run_store(), task)
