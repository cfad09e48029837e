"""A repeat on the Optimize page: one card for an optimization run with N seeds (a ``repeat`` group job,
core.jobs.repeats), a progress bar per seed, one Cancel and one Resume for them all. Widget keys start with
``optimize.repeat.``."""

from __future__ import annotations

import streamlit as st

from core.jobs import JobInfo, sweep_progress
from ui import cache
from ui.jobs import ACTIVE, setup_line
from ui.widgets import JOB_STATE_ICONS, job_state, pct, studio_errors, usd


def _seed_line(cell: dict) -> str:
    used, budget = int(cell.get("metric_calls") or 0), int(cell.get("metric_calls_budget") or 0)
    parts = [f"Seed {cell.get('seed')}: {job_state(str(cell.get('state')))}"]
    parts.append(f"{used:,} / {budget:,} metric calls" if budget else "waiting for its first calls")
    if cell.get("best_val_score") is not None:
        parts.append(f"best validation {pct(cell['best_val_score'])}")
    return " · ".join(parts)


def repeat_progress(job: JobInfo, stored: dict) -> None:
    """The repeat as one card: seeds done of N, a bar per seed (its metric calls of the budget, its best validation
    score), the spend so far, Cancel and Resume for every seed, each seed's error."""
    manager = cache.job_manager()
    try:  # the seeds' own progress files, read now (the group's stored copy is rewritten only when jobs are reaped)
        progress = sweep_progress(manager, job.id)
    except Exception:  # noqa: BLE001 - the stored copy still says something
        progress = stored
    cells = progress.get("cells") or []
    done = int(progress.get("cells_done") or 0)
    st.markdown(f"**{job.title}**  \n{JOB_STATE_ICONS.get(job.state, '')} {done} of {len(cells)} seeds done · "
                f"spend so far {usd(progress.get('total_cost_usd'))}" + _setup(job))
    for cell in cells:
        used, budget = int(cell.get("metric_calls") or 0), int(cell.get("metric_calls_budget") or 0)
        st.progress(min(1.0, used / budget) if budget else 0.0, text=_seed_line(cell))
        if cell.get("error") and cell.get("state") in ("failed", "interrupted", "cancelled"):
            st.caption(f"Seed {cell.get('seed')}: {cell['error']}")
    row = st.container(horizontal=True)
    if job.state in ACTIVE and row.button("Cancel every seed", key="optimize.repeat.cancel",
                                          icon=":material/stop_circle:",
                                          help="Queued seeds leave the queue; running ones stop after their current "
                                               "iteration and keep their best program."):
        with studio_errors():
            manager.cancel(job.id)
            st.rerun()
    if job.resumable and row.button("Resume the repeat", key="optimize.repeat.resume", icon=":material/play_arrow:",
                                    help="Queues every interrupted, cancelled or failed seed again; finished ones "
                                         "stay."):
        with studio_errors():
            manager.resume(job.id)
            cache.clear_runs()
            st.rerun()
    if job.state not in ACTIVE:
        st.page_link("pages/compare.py", label="Compare: the spread of the seeds' test accuracy",
                     icon=":material/bar_chart:")


def _setup(job: JobInfo) -> str:
    """The budget and spending cap every seed runs with."""
    return "  \nEach seed: " + setup_line(job.config.get("base") or {})
