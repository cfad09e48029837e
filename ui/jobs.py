"""Job pickers and live progress panels (baselines and optimizations run as background processes), and how
failures show on a page: failed examples by kind, and a DEGRADED badge that replaces a plain "succeeded"."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.config.errors import JobError, StudioError
from core.jobs import JobInfo
from core.lm.breaker import HINTS, BreakerSettings
from core.optimize import estimate_finish
from core.tracking.runs import has_test_results
from ui import auth, cache
from ui.widgets import JOB_STATE_ICONS, job_state, pct, show_error, studio_errors, usd

ACTIVE = ("queued", "running")
POLL_S = 1.0
DEGRADED_BADGE = ":orange-badge[:material/warning: DEGRADED]"
FAILURE_COLUMN_CONFIG = {
    "degraded": st.column_config.TextColumn("degraded", help="Too many failed examples, or stopped by the circuit "
                                            "breaker: the accuracy is not the model's."),
    "failed": st.column_config.NumberColumn("failed", format="%d", help="Examples without an answer (provider "
                                            "errors, unparseable answers): counted as wrong in the accuracy."),
    "failure_rate": st.column_config.NumberColumn("failure rate", format="percent"),
}


def _picker_state(row: pd.Series) -> str:
    """A job's state as its page's state line says it: a job stopped by its spending cap reads "capped"."""
    capped = row["state"] == "cancelled" and str(row.get("error") or "").startswith("spending cap")
    return "capped" if capped else str(row["state"])


def job_picker(kind: str, current: str | None, key: str, on_pick: Callable[[str | None], None]) -> None:
    """A selectbox of this kind's jobs (newest first) showing ``current``; a pick calls ``on_pick(job_id)``.

    The session's job id is the source of truth: the widget is set from it on every run, and a user's
    pick reaches it through the callback (which runs before the page does).
    """
    with studio_errors():
        jobs = cache.jobs_table()
        jobs = jobs[jobs["kind"] == kind] if not jobs.empty else jobs
        if kind == "optimize" and not jobs.empty:  # a sweep's jobs are listed under the sweep (ui.sweeps)
            jobs = jobs[jobs["sweep"].isna()]
        if jobs.empty:
            return
        labels = {row["id"]: f"{row['title']} · {_picker_state(row)} · {row['id']}" for _, row in jobs.iterrows()}
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
        progress = manager.progress(job_id)
        body(job, progress)
        for warning in progress.get("warnings") or []:  # e.g. a Ray job's rate limit held per node only
            st.warning(str(warning), icon=":material/warning:")
        if polling and job.state not in ACTIVE:
            cache.clear_runs()
            st.rerun()

    panel()
    return True


def failure_table(runs: pd.DataFrame) -> pd.DataFrame:
    """A run table for display: ``degraded`` as "DEGRADED" or "", and a "failures by kind" text column."""
    out = charts.with_failures(runs, runs)
    out["failures by kind"] = [", ".join(f"{k} {v}" for k, v in charts.failure_counts(row).items())
                               for row in out.to_dict("records")]
    out["degraded"] = ["DEGRADED" if bad else "" for bad in out["degraded"]]
    return out


def degraded_warning(row: dict, tags: dict[str, str]) -> None:
    """Say that a run is degraded, with its failures, why, and what the circuit breaker said if it stopped it."""
    label = row.get("label") or row.get("run_label") or row.get("run_name") or row.get("run_id")
    failures = (charts.failure_text(row.get("failed"), row.get("n"), charts.failure_counts(row))
                or charts.optimization_failure_text(row))
    reason = tags.get("studio.degraded_reason", "")
    text = f"{DEGRADED_BADGE} **{label}**" + (f": {failures}" if failures else "") + (f". {reason}" if reason else ".")
    if tags.get("studio.stopped_by") == "breaker":
        text += f"  \nStopped by the circuit breaker: {tags.get('studio.error') or 'the provider kept failing'}"
    st.warning(text + "  \nIts accuracy counts those examples as wrong: it says little about the model.",
               icon=":material/warning:")


def _degraded_above() -> float | None:
    try:
        return BreakerSettings.from_env().degraded_above
    except StudioError:
        return None  # a bad setting is reported where runs start; here the run tags decide alone


def _degraded_runs_of(job: JobInfo) -> set[str]:
    """Run ids of this job's runs tagged degraded (read once the job has ended; the tags are written last)."""
    if job.state in ACTIVE:
        return set()
    try:
        runs = cache.runs_table()
    except StudioError:
        return set()
    if runs.empty or "job_id" not in runs:
        return set()
    mine = charts.with_failures(runs[runs["job_id"] == job.id], runs)
    return set(mine.loc[mine["degraded"], "run_id"].astype(str))


def _header(job: JobInfo, degraded: bool) -> None:
    st.markdown(f"**{job.title}** — {job_state(job.state)}" + (f" {DEGRADED_BADGE}" if degraded else ""))


def _kinds_text(by_kind: dict) -> str:
    return ", ".join(f"{k} {int(v)}" for k, v in sorted(by_kind.items(), key=lambda kv: -int(kv[1])) if int(v) > 0)


def baseline_progress(job: JobInfo, progress: dict) -> None:
    """One progress bar per model with its failed examples (by kind) and retried calls as they happen; a model's
    error once its provider is given up on; Cancel while it runs."""
    models = progress.get("models") or {s.get("name", "?"): {"done": 0, "total": 0}
                                        for s in job.config.get("specs", [])}
    runs = progress.get("runs") or {}
    tagged, limit = _degraded_runs_of(job), _degraded_above()
    degraded = {}
    for name, p in models.items():
        run = runs.get(name) or {}
        done, total, failed = int(p.get("done", 0)), int(p.get("total", 0)), int(p.get("failed") or 0)
        ended = job.state not in ACTIVE and total > 0
        degraded[name] = (bool(run.get("degraded")) or str(run.get("run_id")) in tagged
                          or (ended and limit is not None and failed / total > limit))
    _header(job, any(degraded.values()))
    for name, p in models.items():
        done, total, failed = int(p.get("done", 0)), int(p.get("total", 0)), int(p.get("failed") or 0)
        error = (runs.get(name) or {}).get("error")
        retried = int(p.get("retried") or 0)
        label = f"{name}: {done} / {total} examples" if total else f"{name}: waiting"
        label += f" · {failed} failed" if failed else ""
        label += f" · {retried} calls retried" if retried else ""
        label += " — DEGRADED" if degraded[name] else ""
        st.progress(min(1.0, done / total) if total else 0.0, text=label + (" — failed" if error else ""))
        if failed:
            by_kind = p.get("failed_by_kind") or {}
            top = max(by_kind, key=lambda k: int(by_kind[k]), default=None)
            st.warning(f"**{name}**: {failed} of {done} examples failed so far ({pct(failed / done if done else None)})"
                       + (f": {_kinds_text(by_kind)}" if by_kind else "") + ". They count as wrong."
                       + (f" {HINTS[top]}" if top in HINTS else ""), icon=":material/error:")
        if error:
            st.warning(error if error.startswith(name) else f"{name}: {error}", icon=":material/warning:")
    if job.state == "failed" and job.error:
        st.error(job.error, icon=":material/error:")
    if job.state in ACTIVE and st.button("Cancel", key="baselines.cancel", icon=":material/stop_circle:"):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")


def _failed_calls(progress: dict) -> None:
    """Student calls, reflection calls and proposals that failed so far (a dead reflection model proposes nothing)."""
    names = {"failed_student_calls": "Failed student calls", "failed_reflection_calls": "Failed reflection calls",
             "failed_proposals": "Failed proposals"}
    counts = {key: progress.get(key) for key in names}
    cols = st.columns(3)
    for col, (key, value) in zip(cols, counts.items(), strict=True):
        col.metric(names[key], "–" if value is None else int(value))
    student, reflection, proposals = (int(v or 0) for v in counts.values())
    if reflection or proposals:
        st.warning(f"The reflection model failed {reflection} call(s) and {proposals} proposal(s) gave no usable "
                   "instruction: those iterations could not improve the prompt.", icon=":material/error:")
    if student:
        st.warning(f"{student} student call(s) failed: they score as wrong answers in GEPA's evaluations.",
                   icon=":material/error:")


def _outcome_of(job: JobInfo, progress: dict) -> str:
    """What happened, in a few words (the start of the state line)."""
    if job.state == "queued":
        return "Queued: starts when a job slot is free"
    if job.state == "running":
        phase = progress.get("phase", "starting")
        return {"evaluating": "Running: evaluating on the test set", "stopped": "Stopping",
                "loading": "Running: loading the task"}.get(phase, "Running")
    if job.state == "succeeded":
        return "Finished"
    if job.state == "interrupted":
        return "Interrupted: its process ended (resume it to go on)"
    if job.state == "failed":
        return "Stopped by the circuit breaker" if progress.get("stopped_by") == "breaker" else "Failed"
    reason = job.error or progress.get("message") or "cancelled"
    return "Cancelled" if reason.startswith("cancelled") else f"Stopped: {reason}"


def state_line(job: JobInfo, progress: dict) -> str:
    """The job's state in one line: outcome · best validation score · metric calls of the budget."""
    parts = [_outcome_of(job, progress)]
    best = progress.get("best_val_score")
    if best is not None:
        parts.append(f"best validation {best * 100:.1f} %")
    used, budget = int(progress.get("metric_calls_used") or 0), int(progress.get("metric_calls_budget") or 0)
    if budget:
        parts.append(f"{used:,}/{budget:,} metric calls")
    return " · ".join(parts)


def progress_history(progress: dict) -> pd.DataFrame:
    """The progress chart's points, ending at the metric calls used so far: GEPA records a point when it scores a
    candidate on the validation set, and the minibatch calls after the last one (up to the budget and past it, as
    GEPA ends its last iteration) would otherwise be missing from the chart while the bar counts them."""
    history = pd.DataFrame(progress.get("history") or [])
    used = int(progress.get("metric_calls_used") or 0)
    if history.empty or used <= float(history["metric_calls"].max()):
        return history
    last = {"t": progress.get("elapsed_s"), "metric_calls": used, "iteration": progress.get("iteration"),
            "best_score": history["best_score"].iloc[-1], "val_score": None}
    return pd.concat([history, pd.DataFrame([last])], ignore_index=True)


def optimize_progress(job: JobInfo, progress: dict) -> None:
    """One state line, metric calls of the budget, best score so far, candidates, failed calls, the running cost
    split, and the actions in one row: Cancel · Resume · Evaluate on the test set (a stopped run without results)."""
    degraded = bool(progress.get("degraded")) or bool(_degraded_runs_of(job))
    st.markdown(f"**{job.title}**  \n{JOB_STATE_ICONS.get(job.state, '')} {state_line(job, progress)}"
                + (f" {DEGRADED_BADGE}" if degraded else ""))
    used, budget = int(progress.get("metric_calls_used") or 0), int(progress.get("metric_calls_budget") or 0)
    if budget:
        over = " (GEPA ended its last iteration past the budget)" if used > budget else ""
        st.progress(min(1.0, used / budget), text=f"{used:,} / {budget:,} metric calls{over}")
    if job.state == "failed" and job.error:
        st.error(job.error, icon=":material/error:")
    cols = st.columns(4)
    best = progress.get("best_val_score")
    cols[0].metric("Best validation score", "–" if best is None else f"{best * 100:.1f}%")
    cols[1].metric("Iteration", int(progress.get("iteration") or 0))
    cols[2].metric("Candidates", int(progress.get("candidates") or 0))
    cols[3].metric("Elapsed", f"{float(progress.get('elapsed_s') or 0):.0f} s")
    _failed_calls(progress)
    cost = st.columns(3)
    cap = job.config.get("max_cost_usd")
    cost[0].metric("Student cost", usd(progress.get("student_cost_usd")))
    cost[1].metric("Reflection cost", usd(progress.get("reflection_cost_usd")))
    cost[2].metric("Total cost", usd(progress.get("total_cost_usd")), help=f"Cap {usd(cap)}" if cap else "No cap")
    history = progress_history(progress)
    if not history.empty:
        st.plotly_chart(charts.progress_chart(history, budget=budget or None), key="optimize.chart.progress")
    _actions(job, progress)
    with st.expander("Worker log"):
        st.code(cache.job_manager().log_tail(job.id) or "(empty)", language=None)


def finish_job_of(run_id: str | None) -> dict | None:
    """The newest ``finish`` job (test evaluations) of an optimization run, as a jobs-table row, or None."""
    if not run_id:
        return None
    jobs = cache.jobs_table()
    if jobs.empty:
        return None
    mine = jobs[(jobs["kind"] == "finish") & (jobs["run_id"] == run_id)]
    return None if mine.empty else mine.iloc[0].to_dict()


def has_results(run_id: str | None) -> bool:
    """Does the optimization run have both test accuracies (before and after)?"""
    return has_test_results(cache.runs_table(), run_id)


def _finish_offer(job: JobInfo, progress: dict) -> float | None | bool:
    """False when the run is not a stopped one that kept its best program without results yet (or it is being
    evaluated); else the estimated cost of its test evaluations (None: unknown)."""
    kept = progress.get("phase") == "stopped" or progress.get("stopped_by") == "breaker"
    if job.state in ACTIVE or not job.run_id or not kept or has_results(job.run_id):
        return False
    finish = finish_job_of(job.run_id)
    if finish is not None and finish["state"] in (*ACTIVE, "succeeded"):
        return False
    plan = cache.job_manager().plan(job.id)
    if not plan:
        return None
    return estimate_finish(job.config, len(plan["splits"]["test"]), progress)


def _actions(job: JobInfo, progress: dict) -> None:
    """Cancel (while it runs) · Resume (when it can go on) · Evaluate on the test set (stopped, no results yet)."""
    offer = _finish_offer(job, progress)
    row = st.container(horizontal=True)
    if job.state in ACTIVE and row.button("Cancel", key="optimize.cancel", icon=":material/stop_circle:",
                                          help="Stops after the current iteration and keeps the best program."):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun()
    # Not offered: a capped run would stop again at once (its cap is spent), and a stopped run that got its test
    # results is done, as a finished one is (going on would leave them stale).
    capped = (job.error or "").startswith("spending cap")
    if job.resumable and not capped and not has_results(job.run_id) and row.button(
            "Resume", key="optimize.resume", icon=":material/play_arrow:",
            help="Goes on from GEPA's last saved iteration."):
        with studio_errors():
            cache.job_manager().resume(job.id)
            cache.clear_runs()
            st.rerun()
    if offer is not False:
        label = "Evaluate on the test set" + (f" (≈ {usd(offer)})" if isinstance(offer, float) else "")
        if row.button(label, key="optimize.finish", icon=":material/fact_check:", type="primary",
                      help="Scores the original and the best program found so far on the same test examples "
                           "(the estimate is the student's cost per call so far); the run stays marked as stopped."):
            with studio_errors():
                cache.job_manager().submit_finish(job.run_id, started_by=auth.current_user())  # type: ignore[arg-type]
                cache.clear_runs()
                st.rerun()


def finish_progress(job: JobInfo, progress: dict) -> None:
    """The test evaluations of a stopped optimization: a bar per program, failures as they happen, Cancel."""
    st.markdown(f"**Test evaluation** — {job_state(job.state)}")
    for label, p in (progress.get("programs") or {}).items():
        done, total, failed = int(p.get("done", 0)), int(p.get("total", 0)), int(p.get("failed") or 0)
        retried = int(p.get("retried") or 0)
        text = f"{label}: {done} / {total} examples" + (f" · {failed} failed" if failed else "")
        text += f" · {retried} calls retried" if retried else ""
        st.progress(min(1.0, done / total) if total else 0.0, text=text)
        if failed:
            st.warning(f"**{label}**: {failed} of {done} examples failed so far"
                       + (f": {_kinds_text(p.get('failed_by_kind') or {})}" if p.get("failed_by_kind") else "")
                       + ". They count as wrong.", icon=":material/error:")
    if job.state == "failed" and job.error:
        st.error(job.error, icon=":material/error:")
    if job.state in ACTIVE and st.button("Cancel the test evaluation", key="optimize.finish.cancel",
                                         icon=":material/stop_circle:"):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")
