"""Background jobs: the registry (SQLite, the manager), the table of job kinds, the local process backend
and the worker (``core.jobs.worker``: ``execute`` and the process entry point). See ``core.jobs.registry`` for states and ``core.jobs.kinds`` for what each kind does."""

from core.jobs.kinds import KINDS, JobContext, JobKind, JobOutcome
from core.jobs.registry import FINAL_STATES, RESUMABLE_STATES, Backend, JobInfo, JobManager, JobState

__all__ = ["FINAL_STATES", "KINDS", "RESUMABLE_STATES", "Backend", "JobContext", "JobInfo", "JobKind", "JobManager",
           "JobOutcome", "JobState"]
