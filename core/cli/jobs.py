"""``python -m core jobs [list | show | cancel | resume]``: the background jobs, as the dashboard sees them."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any, Callable

from core.cli.exits import EXIT_HELP, exit_code, job_outcome
from core.config.settings import load_settings
from core.jobs import JobManager
from core.jobs.worker import execute


def follow(manager: JobManager, job_id: str, run: Callable[[], Any]) -> Any:
    """Run ``run()`` here while a thread draws the job's progress file as a tqdm bar."""
    from tqdm import tqdm

    done = threading.Event()

    def draw() -> None:
        bar = tqdm(total=1, desc="GEPA", unit="call", file=sys.stderr, dynamic_ncols=True)
        while not done.wait(0.5):
            p = manager.progress(job_id)
            bar.set_description(p.get("phase", "starting"), refresh=False)  # optimizing, then evaluating: say which
            if p.get("metric_calls_budget"):
                bar.total = p["metric_calls_budget"]
                bar.n = min(p.get("metric_calls_used", 0), bar.total)
                bar.set_postfix_str(progress_postfix(p), refresh=False)
            bar.refresh()
        bar.close()

    t = threading.Thread(target=draw, daemon=True)
    t.start()
    try:
        return run()
    finally:
        done.set()
        t.join(2)


def progress_postfix(p: dict[str, Any]) -> str:
    """The progress bar's tail: best validation score (once there is one), cost so far, candidates."""
    best = p.get("best_val_score")
    parts = [f"best={best:.3f}"] if best is not None else []
    parts += [f"cost=${p.get('total_cost_usd', 0):.4f}", f"cand={p.get('candidates', 0)}"]
    return " ".join(parts)


def run_here(manager: JobManager, job_id: str) -> int:
    """Run a job in this process, drawing its progress; print how it ended and return the exit code. Ctrl-C leaves
    it interrupted (its MLflow run KILLED, tagged interrupted) and prints how to resume it."""
    try:
        follow(manager, job_id, lambda: execute(manager, job_id))
    except KeyboardInterrupt:
        return interrupted_job(manager, job_id)
    return print_job(manager, job_id)


def interrupted_job(manager: JobManager, job_id: str) -> int:
    """What a Ctrl-C of a job run in the foreground prints: its state, its kept run, the command that resumes it."""
    job = manager.get(job_id)
    print(f"job {job.id}: {job.state} (Ctrl-C)" + (f"; MLflow run {job.run_id} kept" if job.run_id else ""))
    if job.resumable:
        print(f"interrupted: resume it with: python -m core jobs resume {job.id}", file=sys.stderr)
    else:
        print(f"interrupted: a {job.kind} job cannot be resumed; start it again", file=sys.stderr)
    return exit_code("interrupted")


def print_job(manager: JobManager, job_id: str) -> int:
    job = manager.get(job_id)
    p = manager.progress(job_id)
    print(f"job {job.id}: {job.state}" + (f" ({job.error})" if job.error else ""))
    for warning in (p or {}).get("warnings") or []:  # e.g. a Ray job's rate limit held per node only
        print(f"  warning: {warning}")
    if p and job.kind == "optimize":
        best = p.get("best_val_score")
        print(f"  metric calls {p.get('metric_calls_used', 0)}/{p.get('metric_calls_budget', '?')}, "
              f"candidates {p.get('candidates', 0)}, best validation score {best if best is None else round(best, 4)}, "
              f"spend ${p.get('total_cost_usd', 0):.4f} (student ${p.get('student_cost_usd', 0):.4f}, "
              f"reflection ${p.get('reflection_cost_usd', 0):.4f}), {p.get('elapsed_s', 0):.1f} s")
    elif p and job.kind in ("sweep", "repeat"):  # a group: one line per cell (a repeat's cells are its seeds)
        from core.cli.sweep import sweep_text

        print(sweep_text(p))
    elif p and job.kind == "baseline":
        for model, m in (p.get("models") or {}).items():
            print(f"  {model}: {m.get('done', 0)}/{m.get('total', 0)} examples")
    if job.run_id:
        print(f"  MLflow run {job.run_id}")
        try:
            from core.tracking.store import RunStore

            run = RunStore(manager.settings).get_run(job.run_id).data
            m, metric = run.metrics, run.tags.get("studio.metric", "accuracy")
            if metric != "accuracy" and "optimized_test_score" in m:
                print(f"  test score ({metric}): original {m['original_test_score']:.3f} -> optimized "
                      f"{m['optimized_test_score']:.3f} (all answers right: {m['original_test_accuracy']:.1%} -> "
                      f"{m['optimized_test_accuracy']:.1%})")
            elif "optimized_test_accuracy" in m:
                print(f"  test accuracy: original {m['original_test_accuracy']:.1%} -> optimized "
                      f"{m['optimized_test_accuracy']:.1%}")
        except Exception:  # noqa: BLE001 - the summary is best effort
            pass
    return exit_code(job_outcome(job.state, job.error))


def _list(manager: JobManager) -> int:
    frame = manager.frame()
    if frame.empty:
        print("no jobs")
        return exit_code("ok")
    cols = ["id", "kind", "state", "metric_calls", "best_val_score", "cost_usd", "title"]
    print(frame[cols].to_string(index=False, max_colwidth=60))
    return exit_code("ok")


def _cancel(manager: JobManager, args: argparse.Namespace) -> int:
    job = manager.cancel(args.job_id)
    print(f"job {job.id}: {job.state}" + (" (stopping after the current iteration)" if job.state == "running" else ""))
    return exit_code("ok")


def _resume(manager: JobManager, args: argparse.Namespace) -> int:
    manager.resume(args.job_id, start=args.background)
    if args.background:
        print(f"job {args.job_id} queued again")
        return exit_code("ok")
    return run_here(manager, args.job_id)


# The actions on one job, by name (``list`` takes none).
ACTIONS: dict[str, Callable[[JobManager, argparse.Namespace], int]] = {
    "show": lambda manager, args: print_job(manager, args.job_id), "cancel": _cancel, "resume": _resume}


def cmd_jobs(args: argparse.Namespace) -> int:
    manager = JobManager(load_settings())
    if args.action == "list":
        return _list(manager)
    if not args.job_id:
        print("error: give a job id", file=sys.stderr)
        return exit_code("usage")
    action = ACTIONS.get(args.action)
    return action(manager, args) if action else exit_code("usage")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("jobs", help="list, show, cancel or resume jobs", epilog=EXIT_HELP)
    p.add_argument("action", nargs="?", choices=["list", "show", "cancel", "resume"], default="list")
    p.add_argument("job_id", nargs="?")
    p.add_argument("--background", action="store_true", help="resume as a background job")
    p.set_defaults(func=cmd_jobs)
