"""A job's process: ``python -m core.jobs.worker JOB_ID``; :func:`execute` does a job's work in this process.

The process's stdout and stderr go to the job's ``worker.log``, which the dashboard shows: :func:`main` scrubs
key values from every log record and from both streams (tracebacks, warnings, progress bars) first.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from core.config import secrets
from core.config.errors import StudioError
from core.config.settings import load_settings
from core.jobs.kinds import KINDS, JobContext, JobOutcome
from core.jobs.registry import JobInfo, JobManager

logger = logging.getLogger(__name__)

STARTING = "starting: loading the task and planning the splits"


def run_kind(kind: str, config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    """Run a job's kind here (the local worker and the Ray worker, core.jobs.remote): an exception is the job's
    failure, with its message (a bug's is logged with its traceback)."""
    try:
        return KINDS[kind].run(config, ctx)
    except Exception as exc:
        message = str(exc) if isinstance(exc, StudioError) else f"{type(exc).__name__}: {exc}"
        logger.exception("job %s failed", ctx.job_id)
        return JobOutcome("failed", message[:4000])


def execute(manager: JobManager, job_id: str, lm_factory: Any = None) -> JobInfo:
    """Do a job's work in this process (the worker calls this; the CLI's foreground runs and tests may too)."""
    job = manager.claim(job_id)
    ctx = JobContext(
        job_id=job_id, job_dir=manager.job_dir(job_id), settings=manager.settings,
        emit=lambda p: manager.write_progress(job_id, p), should_stop=lambda: manager.cancel_requested(job_id),
        set_run_id=lambda rid: manager.set_run_id(job_id, rid), run_id=job.run_id,
        previous=manager.progress(job_id) if job.attempts > 1 or job.run_id else {},
        plan=manager.plan(job_id), lm_factory=lm_factory, started_by=job.started_by,
    )
    # Progress from the first second: what the job does before its kind reports (loading, planning the splits).
    manager.write_progress(job_id, {**(ctx.previous or {}), "phase": "starting", "message": STARTING})
    try:
        outcome = run_kind(job.kind, job.config, ctx)
        manager.finish(job_id, outcome.state, error=outcome.error)
    except KeyboardInterrupt:  # every kind alike: interrupted, its runs KILLED and tagged so, resumable where it is
        resumable = KINDS[job.kind].resumable
        manager.finish(job_id, "interrupted", error="interrupted (Ctrl-C); " + (
            f"resume it with: python -m core jobs resume {job_id}" if resumable else "start it again"))
        manager.tidy_interrupted(job_id)
        raise
    except BaseException as exc:  # SystemExit and the like: recorded, then passed on
        manager.finish(job_id, "failed", error=f"{type(exc).__name__}: {exc}"[:4000])
        raise
    finally:
        try:
            manager.schedule()  # hand the freed slot to the next queued job
        except Exception:
            logger.exception("could not schedule the next job")
    return manager.get(job_id)


def process_args(argv: list[str] | None, usage: str) -> list[str] | None:
    """A job process's one argument, with its streams and log records scrubbed of key values; None (after printing
    ``usage``) when the arguments are wrong."""
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return None
    secrets.install(streams=True)  # before any handler is made, so handlers write to the scrubbing streams
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args


def main(argv: list[str] | None = None) -> int:
    args = process_args(argv, "python -m core.jobs.worker JOB_ID")
    if args is None:
        return 2
    job = execute(JobManager(load_settings()), args[0])
    # a worker process: ok or not (the CLI's rule is core.cli.exits)
    return 0 if job.state in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    raise SystemExit(main())
