"""Background jobs: the registry (SQLite, the manager), the table of job kinds, the local process backend
the worker (``core.jobs.worker``: ``execute`` and the process entry point) and repeats (``core.jobs.repeats``: one
optimization with N seeds). See ``core.jobs.registry`` for states and ``core.jobs.kinds`` for what each kind does."""

from core.jobs.kinds import KINDS, JobContext, JobKind, JobOutcome
from core.jobs.registry import JobManager
from core.jobs.repeats import MAX_SEEDS, repeat_seeds, submit_repeat, submit_repeats
from core.jobs.sweeps import MAX_SWEEP_JOBS, SweepGrid, submit_sweep, sweep_progress
from core.jobs.types import FINAL_STATES, RESUMABLE_STATES, Backend, JobInfo, JobState

__all__ = ["FINAL_STATES", "KINDS", "MAX_SEEDS", "MAX_SWEEP_JOBS", "SweepGrid", "submit_sweep", "sweep_progress",
           "RESUMABLE_STATES", "Backend", "JobContext", "JobInfo", "JobKind", "JobManager", "JobOutcome", "JobState",
           "repeat_seeds", "submit_repeat", "submit_repeats"]
