"""What the registry stores and talks to: job states, the table's schema, :class:`JobInfo` (one job, as read)
and the :class:`Backend` protocol (where a job's work runs)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypedDict

from core.config.settings import Settings

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINAL_STATES = ("succeeded", "failed", "cancelled")
RESUMABLE_STATES = ("interrupted", "cancelled", "failed")


class BaselineOptions(TypedDict, total=False):
    """How a baseline job evaluates (``JobManager.submit_baselines``'s keywords; stored in its config)."""

    module: str  # predict (the default) | cot
    threads: int  # parallel calls (8)
    cache: bool  # answer identical calls from DSPy's cache (True)
    judge: Any  # the ModelSpec of a task scored by a rubric judge (required then)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    state TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    handle TEXT,
    run_id TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    started_by TEXT
)
"""
# Columns added after the first release: (name, SQL type), added to older job tables on open.
ADDED_COLUMNS = (("started_by", "TEXT"),)


@dataclass(frozen=True)
class JobInfo:
    id: str
    kind: str
    title: str
    state: JobState
    config: dict[str, Any]
    created: float
    started: float | None
    ended: float | None
    pid: int | None
    run_id: str | None
    error: str | None
    attempts: int
    cancel_requested: bool
    started_by: str | None = None  # who asked for it: a login e-mail, "local", or the CLI's OS user

    @property
    def resumable(self) -> bool:
        from core.jobs.kinds import KINDS

        kind = KINDS.get(self.kind)
        return bool(kind and kind.resumable) and self.state in RESUMABLE_STATES


class Backend(Protocol):
    """Where a job's work runs. ``start`` returns an opaque handle the registry keeps.

    A backend whose workers cannot reach this machine's disk (a Ray cluster) may also define, and the
    registry then calls them:

    - ``sync(manager, job_id, handle) -> None``: bring the job's remote progress, run id and end state
      into the registry (``manager.write_progress`` / ``set_run_id`` / ``finish``); called for each running job
      before ``alive`` is asked, so a job that ended on its own is not read as interrupted;
    - ``request_cancel(handle) -> None``: pass a cancel request on to the worker (the registry's
      ``cancel_requested`` flag is set as well);
    - ``log_tail(handle, lines) -> str``: the job's log, when it is not in the job's folder here;
    - ``max_jobs: int``: how many of its jobs may run at once (else the settings' ``max_jobs``).
    """

    def start(self, job_id: str, settings: Settings) -> str: ...

    def alive(self, handle: str) -> bool: ...

    def kill(self, handle: str) -> None: ...


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
    tmp.replace(path)
