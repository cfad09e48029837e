"""Job pickers and live progress panels (baselines and optimizations run as background processes)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.errors import JobError
from core.jobs import JobInfo
from ui import cache
from ui.widgets import job_state, show_error, studio_errors, usd

ACTIVE = ("queued", "running")
POLL_S = 1.0


def job_picker(kind: str, current: str | None, key: str, on_pick: Callable[[str | None], None]) -> None:
    """A selectbox of this kind's jobs (newest first) showing ``current``; a pick calls ``on_pick(job_id)``.

    The session's job id is the source of truth: the widget is set from it on every run, and a user's
    pick reaches it through the callback (which runs before the page does).
    """
    with studio_errors():
        jobs = cache.jobs_table()
        jobs = jobs[jobs["kind"] == kind] if not jobs.empty else jobs
        if jobs.empty:
            return
        labels = {row["id"]: f"{row['title']} · {row['state']} · {row['id']}" for _, row in jobs.iterrows()}
        if current and current not in labels:
            labels = {current: current, **labels}
        st.session_state[key] = current
        st.selectbox("Job", list(labels), index=None, key=key, format_func=labels.get, placeholder="Watch a job…",
                     on_change=lambda: on_pick(st.session_state[key]))


def load_job(job_id: str) -> JobInfo | None:
    try:
        return cache.job_manager().get(job_id)
    except JobError as exc:
        show_error(exc)
        return None


def live_panel(job_id: str, body: Callable[[JobInfo, dict], None]) -> bool:
    """Render ``body(job, progress)``; while the job is queued or running, poll every second.

    When the job leaves the running states the whole page reruns once (fresh run tables, no more polling).
    Returns False (after showing why) when the job cannot be found.
    """
    first = load_job(job_id)
    if first is None:
        return False
    polling = first.state in ACTIVE

    @st.fragment(run_every=POLL_S if polling else None)
    def panel() -> None:
        manager = cache.job_manager()
        job = load_job(job_id)
        if job is None:
            return
        body(job, manager.progress(job_id))
        if polling and job.state not in ACTIVE:
            cache.clear_runs()
            st.rerun()

    panel()
    return True


def baseline_progress(job: JobInfo, progress: dict) -> None:
    """One progress bar per model; errors per model; Cancel while it runs."""
    st.markdown(f"**{job.title}** — {job_state(job.state)}")
    models = progress.get("models") or {s.get("name", "?"): {"done": 0, "total": 0}
                                        for s in job.config.get("specs", [])}
    runs = progress.get("runs") or {}
    for name, p in models.items():
        done, total = int(p.get("done", 0)), int(p.get("total", 0))
        error = (runs.get(name) or {}).get("error")
        label = f"{name}: {done} / {total} examples" if total else f"{name}: waiting"
        st.progress(min(1.0, done / total) if total else 0.0, text=label + (" — failed" if error else ""))
        if error:
            st.warning(error if error.startswith(name) else f"{name}: {error}", icon=":material/warning:")
    if job.state == "failed" and job.error:
        st.error(job.error, icon=":material/error:")
    if job.state in ACTIVE and st.button("Cancel", key="baselines.cancel", icon=":material/stop_circle:"):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")


def optimize_progress(job: JobInfo, progress: dict) -> None:
    """Metric calls used of the budget, best score so far, candidates, running cost split, and controls."""
    st.markdown(f"**{job.title}** — {job_state(job.state)}")
    phase, message = progress.get("phase", job.state), progress.get("message", "")
    used, budget = int(progress.get("metric_calls_used") or 0), int(progress.get("metric_calls_budget") or 0)
    share = min(1.0, used / budget) if budget else 0.0
    st.progress(share, text=f"{phase}: {used:,} / {budget:,} metric calls" if budget else f"{phase} {message}".strip())
    if message and budget:
        st.caption(message)
    cols = st.columns(4)
    best = progress.get("best_val_score")
    cols[0].metric("Best validation score", "–" if best is None else f"{best * 100:.1f}%")
    cols[1].metric("Iteration", int(progress.get("iteration") or 0))
    cols[2].metric("Candidates", int(progress.get("candidates") or 0))
    cols[3].metric("Elapsed", f"{float(progress.get('elapsed_s') or 0):.0f} s")
    cost = st.columns(3)
    cap = job.config.get("max_cost_usd")
    cost[0].metric("Student cost", usd(progress.get("student_cost_usd")))
    cost[1].metric("Reflection cost", usd(progress.get("reflection_cost_usd")))
    cost[2].metric("Total cost", usd(progress.get("total_cost_usd")), help=f"Cap {usd(cap)}" if cap else "No cap")
    history = progress.get("history") or []
    if history:
        st.plotly_chart(charts.progress_chart(pd.DataFrame(history)), key="optimize.chart.progress")
    if job.error and job.state in ("failed", "cancelled", "interrupted"):
        (st.error if job.state == "failed" else st.info)(job.error)
    buttons = st.columns(3)
    if job.state in ACTIVE and buttons[0].button("Cancel", key="optimize.cancel", icon=":material/stop_circle:",
                                                 help="Stops after the current iteration and keeps the best program."):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun()
    if job.resumable and buttons[1].button("Resume", key="optimize.resume", icon=":material/play_arrow:",
                                           help="Goes on from GEPA's last saved iteration."):
        with studio_errors():
            cache.job_manager().resume(job.id)
            cache.clear_runs()
            st.rerun()
    with st.expander("Worker log"):
        st.code(cache.job_manager().log_tail(job.id) or "(empty)", language=None)
