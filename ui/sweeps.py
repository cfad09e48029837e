"""Sweeps on the pages: the Optimize page's sweep form (students × optimizers × seeds × budgets, its arithmetic, Run
sweep), a sweep's live progress (one row per cell, one Cancel, one Resume), and Compare's sweep selector and per-cell
table. Widget keys start with ``optimize.sweep.`` or ``compare.sweep``."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from core.config.errors import ConfigError, StudioError
from core.jobs import MAX_SEEDS, JobInfo
from core.jobs.sweeps import MAX_SWEEP_JOBS, SweepGrid, cell_label, expand, submit_sweep
from core.optimize import OPTIMIZERS, OptimizeConfig
from core.tracking.runs import sweep_cells, sweeps_in
from ui import auth, cache
from ui.jobs import ACTIVE, job_picker, live_panel
from ui.widgets import job_state, pct, show_error, studio_errors, usd, usd_range

JOB = "optimize.sweep.job"  # the sweep in view on the Optimize page (a job id)
OPTIMIZERS_FOR = "optimize.sweep.optimizers_for"  # the page's optimizer the sweep's optimizers were set from
BUDGET_CHOICES = ("light", "medium", "heavy")


def _grid(config: OptimizeConfig) -> SweepGrid | None:
    """The grid the form describes (None until every axis has a value)."""
    names = cache.catalog().names()
    cols = st.columns([3, 2])
    # The chips are the grid: set from the page's optimizer until the user picks (never a default the widget keeps
    # apart from what it shows, such as a hidden "own" cell under a GEPA chip).
    if st.session_state.get(OPTIMIZERS_FOR) != config.optimizer or "optimize.sweep.optimizers" not in st.session_state:
        st.session_state["optimize.sweep.optimizers"] = [config.optimizer]
        st.session_state[OPTIMIZERS_FOR] = config.optimizer
    second = second_model(st.session_state["optimize.sweep.optimizers"])
    students = cols[0].multiselect("Students", names, default=[config.student.name] if config.student.name in names
                                   else None, key="optimize.sweep.students", help=(
                                       f"Each student works with {config.reflection.name if config.reflection else '—'}"
                                       f" as the {second}." if second else "Each student runs alone: no second model."))
    optimizers = cols[1].multiselect("Optimizers", list(OPTIMIZERS), key="optimize.sweep.optimizers",
                                     format_func=lambda k: OPTIMIZERS[k].label)
    cols = st.columns([1, 2, 2])
    n = int(cols[0].number_input("Seeds per cell", min_value=1, max_value=MAX_SEEDS, value=1,
                                 key="optimize.sweep.seeds",
                                 help=f"Seeds {config.seed}, {config.seed + 1}, …: Compare shows each cell's spread."))
    budgets = cols[1].multiselect("Budgets", BUDGET_CHOICES, default=["light"], key="optimize.sweep.budgets")
    extra = cols[2].text_input("More budgets", key="optimize.sweep.more_budgets", placeholder="calls:60, evals:4",
                               help="calls:N = N metric calls (GEPA); evals:N = N candidate programs (few-shot).")
    budgets = [*budgets, *(b.strip() for b in extra.split(",") if b.strip())]
    if not (students and optimizers and budgets):
        st.caption("Pick at least one student, optimizer and budget.")
        return None
    return SweepGrid(students, optimizers, [config.seed + i for i in range(n)], budgets)


def second_model(optimizers: list[str]) -> str:
    """What the second model is to these optimizers, in their table's words ("reflection model", "teacher", ...;
    "" when none uses one): never a reflection model for an optimizer that has none."""
    roles = list(dict.fromkeys(OPTIMIZERS[k].reflection_role for k in optimizers if OPTIMIZERS[k].reflection_role))
    if len(roles) <= 1:
        return "".join(roles)
    return "second model (" + ", ".join(f"{OPTIMIZERS[k].label}'s {OPTIMIZERS[k].reflection_role}" for k in optimizers
                                        if OPTIMIZERS[k].reflection_role) + ")"


def _arithmetic(planned: list, max_jobs: int, remote: bool) -> None:
    """What the sweep implies: per cell and in total (calls, reflection calls, cost), and how many run at once."""
    rows = []
    for cell, plan in planned:
        e = plan.estimate
        rows.append({"student": cell["student"], "optimizer": OPTIMIZERS[cell["optimizer"]].label,
                     "budget": cell["budget"], "seed": cell["seed"], "metric calls": e.metric_calls,
                     "test calls": e.test_calls, "reflection calls": e.reflection_calls_high,
                     "cost low": e.cost_low_usd, "cost high": e.cost_high_usd, "test cost": e.test_cost_usd})
    table = pd.DataFrame(rows)
    known = table["cost low"].notna().all() and table["cost high"].notna().all()
    test_cost = table["test cost"].fillna(0.0).sum()
    cols = st.columns([1, 1, 1.5, 1])
    cols[0].metric("Jobs", f"{len(table):,}", help=f"At most {MAX_SWEEP_JOBS} in one sweep.")
    cols[1].metric("Student calls", f"{int(table['metric calls'].sum() + table['test calls'].sum()):,}",
                   help=f"{int(table['metric calls'].sum()):,} in the searches, {int(table['test calls'].sum()):,} in "
                        "the test evaluations.")
    cols[2].metric("Estimated cost",
                   usd_range(table["cost low"].sum() + test_cost, table["cost high"].sum() + test_cost)
                   if known else "unknown price", help="Searches and test evaluations of every cell; cached answers "
                                                       "cost nothing.")
    at_once = min(max_jobs, len(table))
    cols[3].metric("Runs at once", at_once,
                   help=("Ray cluster: jobs run side by side on its workers." if remote else
                         "Local processes: the rest wait in the queue (GEPA_STUDIO_MAX_JOBS)."))
    rounds = -(-len(table) // at_once)
    second = second_model(list(dict.fromkeys(cell["optimizer"] for cell, _ in planned)))
    calls = f"Up to {int(table['reflection calls'].sum()):,} calls of the {second}. " if second else ""
    if not second:  # no optimizer of the grid uses a second model: no column of its calls
        table = table.drop(columns=["reflection calls"])
    st.caption(f"{calls}{len(table)} job{'s' if len(table) > 1 else ''}, {at_once} at once: about {rounds} "
               f"round{'s' if rounds > 1 else ''} of one job's time.")
    with st.expander(f"Cells ({len(table)})"):
        st.dataframe(table, hide_index=True, key="optimize.sweep.cells", column_config={
            "reflection calls": st.column_config.NumberColumn(f"calls of the {second}" if second else None),
            "cost low": st.column_config.NumberColumn(format="$%.4f"),
            "cost high": st.column_config.NumberColumn(format="$%.4f"),
            "test cost": st.column_config.NumberColumn(format="$%.4f")})


def _plans(config: OptimizeConfig, grid: SweepGrid) -> list:
    """Each cell with its plan (through the page's plan cache: a one-cell sweep is the estimate above)."""
    planned = []
    for cell, cell_config in expand(replace(config, sweep=None), grid, cache.catalog()):
        try:
            planned.append((cell, cache.plan_for(cell_config.to_dict())))
        except StudioError as exc:
            raise ConfigError(f"Sweep cell {cell_label(cell)}: {exc}", exc.hint) from None
    return planned


def sweep_form(config: OptimizeConfig) -> None:
    """The "Sweep" section: the settings above, over a grid of students, optimizers, seeds and budgets."""
    with st.expander("Sweep: several students, optimizers, seeds and budgets as one job"):
        st.caption("Every combination is one optimization with the settings above, on the same examples; the sweep "
                   "shows their progress together, cancels them together, and Compare groups their runs.")
        try:
            grid = _grid(config)
            if grid is None:
                return
            manager = cache.job_manager()
            planned = _plans(config, grid)
        except StudioError as exc:
            show_error(exc)
            return
        limit = getattr(manager.backend, "max_jobs", None) or manager.settings.max_jobs
        _arithmetic(planned, limit, remote=bool(getattr(manager.settings, "ray_address", None)))
        if st.button(f"Run sweep ({grid.size} job{'s' if grid.size > 1 else ''})", key="optimize.sweep.run",
                     type="primary", icon=":material/grid_view:"):
            with studio_errors():
                sweep_id = submit_sweep(manager, config, grid, cache.catalog(), started_by=auth.current_user(),
                                        planned=planned)
                st.session_state[JOB] = sweep_id
                cache.clear_runs()
                st.success(f"Sweep {sweep_id} queued: {grid.size} jobs. Follow it under Sweeps below; its runs "
                           "appear on Compare, grouped by sweep.", icon=":material/grid_view:")


def sweep_body(job: JobInfo, progress: dict) -> None:
    """A sweep as one card: cells done of total, by state, metric calls, cost, the best cell so far, one Cancel and one
    Resume; its jobs listed under it (collapsed)."""
    done, total = int(progress.get("cells_done") or 0), int(progress.get("cells_total") or 0)
    by_state = progress.get("by_state") or {}
    st.markdown(f"**{job.title}** — {job_state(job.state)}")
    st.progress(done / total if total else 0.0, text=f"{done} / {total} cells done · " + ", ".join(
        f"{n} {s}" for s, n in sorted(by_state.items())))
    if job.state in ("failed", "interrupted") and job.error:
        (st.error if job.state == "failed" else st.warning)(job.error, icon=":material/error:")
    best = progress.get("best") or {}
    cols = st.columns([1, 1, 2])
    cols[0].metric("Metric calls", f"{int(progress.get('metric_calls_used') or 0):,}")
    cols[1].metric("Cost so far", usd(progress.get("total_cost_usd")))
    cols[2].metric("Best so far (validation)", pct(best.get("best_val_score")) if best else "–",
                   help=f"{best['student']} · {best['optimizer']} · {best['budget']} · seed {best['seed']}" if best
                   else "No cell has scored a candidate yet.")
    row = st.container(horizontal=True)
    if job.state in ACTIVE and row.button("Cancel sweep", key="optimize.sweep.cancel", icon=":material/stop_circle:",
                                          help="Queued jobs leave the queue; running ones stop after their current "
                                               "iteration and keep their best program."):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun()
    if job.resumable and row.button("Resume sweep", key="optimize.sweep.resume", icon=":material/play_arrow:",
                                    help="Queues every interrupted, cancelled or failed job again; finished ones "
                                         "stay."):
        with studio_errors():
            cache.job_manager().resume(job.id)
            cache.clear_runs()
            st.rerun()
    cells = pd.DataFrame(progress.get("cells") or [])
    if not cells.empty:
        with st.expander(f"Its {len(cells)} jobs"):
            st.dataframe(cells_table(cells), hide_index=True, key="optimize.sweep.children", column_config=CELL_COLUMNS)


CELL_COLUMNS = {
    "state": st.column_config.TextColumn("state", width=110),  # "interrupted" whole at 1280 px
    "metric_calls": st.column_config.NumberColumn("metric calls"),
    "best_val_score": st.column_config.NumberColumn("best validation", format="percent"),
    "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
    "job_id": st.column_config.TextColumn("job"),
    "error": st.column_config.TextColumn("error", width="large"),
}


def cells_table(cells: pd.DataFrame) -> pd.DataFrame:
    """A sweep's jobs for display: the state in full ("succeeded", never cut), no "None" where a job has no error
    (the error column only when some job has one)."""
    columns = ["student", "optimizer", "budget", "seed", "state", "metric_calls", "best_val_score", "cost_usd",
               "job_id"]
    table = cells.reindex(columns=[*columns, "error"]).copy()
    table["error"] = table["error"].map(lambda e: "" if e is None or e != e or str(e) == "None" else str(e))
    table["state"] = table["state"].fillna("").astype(str)
    return table if table["error"].astype(bool).any() else table[columns]


def sweep_section() -> None:
    """The Optimize page's "Sweeps": pick a sweep (the newest one started here by default) and follow it."""
    jobs = cache.jobs_table()
    if jobs.empty or not (jobs["kind"] == "sweep").any():
        return
    st.subheader("Sweeps")
    if not st.session_state.get(JOB):  # the newest sweep, until one is picked
        st.session_state[JOB] = str(jobs[jobs["kind"] == "sweep"].iloc[0]["id"])
    job_picker("sweep", st.session_state.get(JOB), key="optimize.sweep.job.w",
               on_pick=lambda job_id: st.session_state.__setitem__(JOB, job_id))
    if st.session_state.get(JOB) and not live_panel(st.session_state[JOB], sweep_body):
        st.session_state[JOB] = None


def sweep_filter(runs: pd.DataFrame) -> str | None:
    """Compare's sweep selector (only when runs carry a sweep): a sweep's id, or None for every run."""
    ids = sweeps_in(runs)
    if not ids:
        return None
    titles = {}
    with studio_errors():
        jobs = cache.jobs_table()
        titles = dict(zip(jobs["id"], jobs["title"], strict=True)) if not jobs.empty else {}
    return st.selectbox("Sweep", ids, index=None, key="compare.sweep", placeholder="All runs (no sweep chosen)",
                        format_func=lambda i: f"{titles.get(i, 'Sweep')} · {i}",
                        help="Narrow Compare to the runs of one sweep, with a table per cell.")


def sweep_cells_section(runs: pd.DataFrame, sweep: str) -> None:
    """One row per cell of the sweep (student × optimizer × budget): runs, mean test accuracy, min–max over seeds,
    cost."""
    cells = sweep_cells(runs, sweep)
    st.subheader("Sweep cells")
    if cells.empty:
        st.info("No optimization of this sweep has a run yet.")
        return
    st.caption("Each cell's seeds together: mean test accuracy before and after, the range of the optimized accuracy "
               "over the seeds, and what the cell's optimizations cost.")
    st.dataframe(cells, hide_index=True, key="compare.sweep.cells", column_config={
        "with_results": st.column_config.NumberColumn("with results", help="Runs with both test accuracies."),
        "original": st.column_config.NumberColumn("before", format="percent"),
        "optimized": st.column_config.NumberColumn("after", format="percent"),
        "optimized_min": st.column_config.NumberColumn("after min", format="percent"),
        "optimized_max": st.column_config.NumberColumn("after max", format="percent"),
        "gain": st.column_config.NumberColumn("gain", format="percent", help="After minus before: points of accuracy."),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f")})
