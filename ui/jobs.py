"""Job pickers and live progress panels (baselines and optimizations run as background processes): failed examples
by kind in words as they happen, a finished job in the past tense, and Resume only where it can change the outcome
(the failure views themselves are in ``ui.failures``)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from core.analytics import charts
from core.analytics.failures import (
    counts_text,
    job_error_text,
    reflection_parse_failure,
    resume_can_help,
    resume_refusal,
)
from core.config.errors import JobError, StudioError
from core.jobs import JobInfo
from core.lm.breaker import HINTS, BreakerSettings
from core.optimize import entry, estimate_finish
from core.tracking.runs import has_test_results
from ui import auth, cache
from ui.failures import DEGRADED_BADGE, failure_details
from ui.widgets import JOB_STATE_ICONS, job_state, pct, show_error, studio_errors, usd

ACTIVE = ("queued", "running")
POLL_S = 1.0


def _picker_state(row: pd.Series) -> str:
    """A job's state as its page's state line says it: a job stopped by its spending cap reads "capped"."""
    capped = row["state"] == "cancelled" and str(row.get("error") or "").startswith("spending cap")
    return "capped" if capped else str(row["state"])


def job_picker(kind: str | tuple[str, ...], current: str | None, key: str,
               on_pick: Callable[[str | None], None]) -> None:
    """A selectbox of this kind's jobs (or these kinds', newest first) showing ``current``; a pick calls
    ``on_pick(job_id)``. A group's jobs (a sweep's, a repeat's seeds) are listed under their group, not here.

    The session's job id is the source of truth: the widget is set from it on every run, and a user's
    pick reaches it through the callback (which runs before the page does).
    """
    with studio_errors():
        jobs = cache.jobs_table()
        kinds = [kind] if isinstance(kind, str) else list(kind)
        jobs = jobs[jobs["kind"].isin(kinds) & jobs["sweep"].isna()] if not jobs.empty else jobs
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


def ended_words(state: str, done: int, failed: int, degraded: bool) -> str:
    """A finished job's state in the past tense: "failed: every answer was unusable" when nothing was answered,
    "finished, 12 of 20 examples failed" with a DEGRADED badge, else the plain state with its icon."""
    if state == "succeeded" and done and failed >= done:
        return f":material/error: failed: every answer was unusable ({failed} of {done} examples failed)"
    if state == "succeeded" and degraded:
        return f":material/warning: finished, {failed} of {done} examples failed {DEGRADED_BADGE}" if failed else \
            f":material/warning: finished {DEGRADED_BADGE}"
    return job_state(state) + (f" {DEGRADED_BADGE}" if degraded else "")


def _kinds_text(by_kind: dict) -> str:
    return counts_text(by_kind)  # "30 not a label, 2 timed out"


def _model_rows(job: JobInfo, progress: dict) -> list[dict]:
    """Each model's done, total, failed (by kind), retried, error and whether it is degraded."""
    models = progress.get("models") or {s.get("name", "?"): {"done": 0, "total": 0}
                                        for s in job.config.get("specs", [])}
    runs = progress.get("runs") or {}
    tagged, limit = _degraded_runs_of(job), _degraded_above()
    rows = []
    for name, p in models.items():
        run = runs.get(name) or {}
        done, total, failed = int(p.get("done", 0)), int(p.get("total", 0)), int(p.get("failed") or 0)
        ended = job.state not in ACTIVE and total > 0
        rows.append({"name": name, "done": done, "total": total, "failed": failed, "run_id": run.get("run_id"),
                     "retried": int(p.get("retried") or 0), "error": run.get("error"),
                     "by_kind": p.get("failed_by_kind") or {},
                     "degraded": (bool(run.get("degraded")) or str(run.get("run_id")) in tagged
                                  or (ended and limit is not None and failed / total > limit))})
    return rows


def _model_failures(job: JobInfo, row: dict) -> None:
    """A model's failed examples in words ("failed so far" while it runs, "failed" once it ended), the hint of the
    commonest kind, and (once its run is logged) each kind's first example and the list of them."""
    name, done, failed, by_kind = row["name"], row["done"], row["failed"], row["by_kind"]
    top = max(by_kind, key=lambda k: int(by_kind[k]), default=None)
    when = "so far " if job.state in ACTIVE else ""
    st.warning(f"**{name}**: {failed} of {done} examples failed {when}({pct(failed / done if done else None)})"
               + (f": {_kinds_text(by_kind)}" if by_kind else "") + ". They count as wrong."
               + (f" {HINTS[top]}" if top in HINTS else ""), icon=":material/error:")
    if job.state not in ACTIVE and row["run_id"]:
        failure_details(str(row["run_id"]), by_kind, key=f"baselines.failures.{name}")


def baseline_progress(job: JobInfo, progress: dict) -> None:
    """One progress bar per model with its failed examples (by kind, in words) and retried calls as they happen; a
    model's error once its provider is given up on; Cancel while it runs."""
    rows = _model_rows(job, progress)
    done, failed = sum(r["done"] for r in rows), sum(r["failed"] for r in rows)
    degraded = any(r["degraded"] for r in rows)
    state = job_state(job.state) + (f" {DEGRADED_BADGE}" if degraded else "") if job.state in ACTIVE else \
        ended_words(job.state, done, failed, degraded)
    st.markdown(f"**{job.title}** — {state}")
    for row in rows:
        name, done, total, failed = row["name"], row["done"], row["total"], row["failed"]
        label = f"{name}: {done} / {total} examples" if total else f"{name}: waiting"
        label += f" · {failed} failed" if failed else ""
        label += f" · {row['retried']} calls retried" if row["retried"] else ""
        label += " — DEGRADED" if row["degraded"] else ""
        st.progress(min(1.0, done / total) if total else 0.0, text=label + (" — failed" if row["error"] else ""))
        if failed:
            _model_failures(job, row)
        if error := row["error"]:
            st.warning(error if error.startswith(name) else f"{name}: {error}", icon=":material/warning:")
    if job.state == "failed" and job.error:
        st.error(job_error_text(job.error), icon=":material/error:")
    if job.state in ACTIVE and st.button("Cancel", key="baselines.cancel", icon=":material/stop_circle:"):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")


def _failed_calls(progress: dict, job: JobInfo) -> None:
    """Student calls, reflection calls and proposals that failed (a dead reflection model proposes nothing); a job
    that ended on an unreadable reflection answer never shows "Failed reflection calls 0"."""
    names = {"failed_student_calls": "Failed student calls", "failed_reflection_calls": "Failed reflection calls",
             "failed_proposals": "Failed proposals"}
    counts = {key: progress.get(key) for key in names}
    unread = reflection_parse_failure(job.error) and not int(counts["failed_reflection_calls"] or 0)
    cols = st.columns(3)
    for col, (key, value) in zip(cols, counts.items(), strict=True):
        shown = "at least 1" if unread and key == "failed_reflection_calls" else "–" if value is None else int(value)
        col.metric(names[key], shown, help="The answer the run ended on: see the error above." if shown == "at least 1"
                   else None)
    student, reflection, proposals = (int(v or 0) for v in counts.values())
    if reflection or proposals:
        st.warning(f"The reflection model failed {reflection} call(s) and {proposals} proposal(s) gave no usable "
                   "instruction: those iterations could not improve the prompt.", icon=":material/error:")
    if student:
        st.warning(f"{student} student call(s) failed: they score as wrong answers in the optimizer's evaluations.",
                   icon=":material/error:")


def _running(progress: dict) -> str:
    phase, message = progress.get("phase", "starting"), progress.get("message")
    if phase in ("starting", "optimizing") and message:  # the first seconds: loading, planning, the first calls
        return f"Running: {message}"
    return {"evaluating": "Running: evaluating on the test set", "stopped": "Stopping",
            "loading": "Running: loading the task", "starting": "Running: starting"}.get(phase, "Running")


def _outcome_of(job: JobInfo, progress: dict) -> str:
    """What happened, in a few words (the start of the state line)."""
    if job.state == "queued":
        return "Queued: starts when a job slot is free"
    if job.state == "running":
        return _running(progress)
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


def setup_line(config: dict) -> str:
    """The budget and spending cap an optimization runs with (its job's config), in one line."""
    if config.get("max_metric_calls"):
        budget = f"{int(config['max_metric_calls']):,} metric calls"
    elif config.get("max_full_evals"):
        budget = f"{int(config['max_full_evals'])} full evaluations"
    else:
        budget = str(config.get("auto") or "none")
    cap = config.get("max_cost_usd")
    return f"Budget {budget} · " + (f"spending cap {usd(cap, 2)}" if cap else "no spending cap")


def optimize_progress(job: JobInfo, progress: dict) -> None:
    """One state line, metric calls of the budget, best score so far, candidates, failed calls, the running cost
    split, and the actions in one row: Cancel · Resume · Evaluate on the test set (a stopped run without results)."""
    degraded = bool(progress.get("degraded")) or bool(_degraded_runs_of(job))
    st.markdown(f"**{job.title}**  \n{JOB_STATE_ICONS.get(job.state, '')} {state_line(job, progress)}"
                + (f" {DEGRADED_BADGE}" if degraded else ""))
    st.caption(setup_line(job.config))
    used, budget = int(progress.get("metric_calls_used") or 0), int(progress.get("metric_calls_budget") or 0)
    if budget:
        words = entry(job.config.get("optimizer")).words.overshoot
        over = f" ({words})" if used > budget and words else ""
        st.progress(min(1.0, used / budget), text=f"{used:,} / {budget:,} metric calls{over}")
    if job.state == "failed" and job.error:
        st.error(job_error_text(job.error), icon=":material/error:")
    cols = st.columns(4)
    best = progress.get("best_val_score")
    cols[0].metric("Best validation score", "–" if best is None else f"{best * 100:.1f}%")
    cols[1].metric("Iteration", int(progress.get("iteration") or 0))
    cols[2].metric("Candidates", int(progress.get("candidates") or 0))
    elapsed = progress.get("elapsed_s") or (time.time() - job.started if job.state in ACTIVE and job.started else 0)
    cols[3].metric("Elapsed", f"{float(elapsed):.0f} s")
    _failed_calls(progress, job)
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
    helps = resume_can_help(job.state, job.error)  # not after an unreadable answer, a rejected key, a wrong name
    if job.resumable and not helps:
        st.caption(resume_refusal(job.error))
    if job.resumable and helps and not capped and not has_results(job.run_id) and row.button(
            "Resume", key="optimize.resume", icon=":material/play_arrow:",
            help="Goes on from the last saved iteration (GEPA) or starts the optimizer again in the same run."):
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
            st.warning(f"**{label}**: {failed} of {done} examples failed{' so far' if job.state in ACTIVE else ''}"
                       + (f": {_kinds_text(p.get('failed_by_kind') or {})}" if p.get("failed_by_kind") else "")
                       + ". They count as wrong.", icon=":material/error:")
    if job.state == "failed" and job.error:
        st.error(job_error_text(job.error), icon=":material/error:")
    if job.state in ACTIVE and st.button("Cancel the test evaluation", key="optimize.finish.cancel",
                                         icon=":material/stop_circle:"):
        with studio_errors():
            cache.job_manager().cancel(job.id)
            st.rerun(scope="fragment")
