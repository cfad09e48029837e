"""The job registry: every job's state in one SQLite table, and the manager that submits, schedules,
watches, cancels and resumes jobs through a :class:`Backend`.

A SQLite registry in the data dir records every job's state; a job's folder
(``<data dir>/jobs/<id>/``) holds its config, its live ``progress.json`` (what the dashboard polls),
its log and GEPA's ``log_dir``. At most ``max_jobs`` run at once; the rest wait as ``queued``.

States: queued → running → succeeded | failed | cancelled; a ``running`` job whose process is gone
(kill -9, reboot) reads as ``interrupted`` and can be resumed from GEPA's last saved iteration.

What a job does is its kind's entry in ``core.jobs.kinds.KINDS``; where it runs is the :class:`Backend`
(``start(job_id) -> handle``, ``alive(handle)``, ``kill(handle)``; ``core.jobs.local`` runs local processes;
docs/distributed.md says how a Ray backend fits). One cancel channel: the ``cancel_requested`` flag here.

Many processes may open the registry at once (CLI runs, the dashboard, workers): the table is created under
a file lock in the data dir, and the MLflow store is created before the first job starts (``core.tracking.store``).
Errors and progress written here are scrubbed of key values (``core.config.secrets``): the dashboard shows them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Unpack

import pandas as pd

from core.config.errors import JobError
from core.config.secrets import scrub, scrub_data
from core.config.settings import PLAN_FILE, Settings
from core.jobs.types import ADDED_COLUMNS, FINAL_STATES, SCHEMA, Backend, BaselineOptions, JobInfo, JobState, write_json
from core.tracking.store import data_lock

logger = logging.getLogger(__name__)


def init_store(settings: Settings) -> None:
    """Make sure the MLflow store exists and is migrated (concurrent first use races on SQLite)."""
    from core.tracking.store import RunStore

    RunStore(settings).client.search_experiments(max_results=1)


class JobManager:
    """Submit, list, watch, cancel and resume jobs. Safe to use from many processes at once."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings.ensure()
        if backend is None:
            from core.jobs.backends import backend_for

            backend = backend_for(self.settings)
        self.backend = backend
        self.db_path = settings.data_dir / "jobs.db"
        with data_lock(self.settings, "jobs"), self._db() as db:  # a fresh file: one process sets it up
            db.execute(SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, sql_type in ADDED_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {sql_type}")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            yield conn
        finally:
            conn.close()

    def job_dir(self, job_id: str) -> Path:
        return self.settings.jobs_dir / job_id

    # Submitting ------------------------------------------------------------------------------

    def submit(self, kind: str, title: str, config: dict[str, Any], start: bool = True,
               plan: dict[str, Any] | None = None, started_by: str | None = None, run_id: str | None = None) -> str:
        """Queue a job of ``kind`` (an entry of ``core.jobs.kinds.KINDS``); ``plan`` is stored with it and run as is;
        ``started_by`` (who asked) is kept with the job and tagged on its runs; ``run_id``: its run, if known."""
        from core.jobs.kinds import KINDS

        if kind not in KINDS:
            raise JobError(f"Unknown job kind {kind!r}.", f"Use one of: {', '.join(KINDS)}.")
        job_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        if plan is not None:
            write_json(self.job_dir(job_id) / PLAN_FILE, plan)
        with self._db() as db:
            db.execute("INSERT INTO jobs (id, kind, title, state, config, created, started_by, run_id) "
                       "VALUES (?,?,?,?,?,?,?,?)",
                       (job_id, kind, scrub(title), "queued", json.dumps(config), time.time(), started_by, run_id))
        if start:
            self.schedule()
        return job_id

    def submit_optimization(self, config: Any, start: bool = True, plan: Any = None,
                            started_by: str | None = None) -> str:
        """Plan ``config`` (an OptimizeConfig) here, unless given its ``plan``, then queue exactly that plan."""
        from core.optimize import plan_optimization

        plan = plan or plan_optimization(config, self.settings)
        return self.submit("optimize", plan.title, config.to_dict(), start,
                           plan={"task": plan.task.to_dict(), "splits": plan.splits.to_dict()}, started_by=started_by)

    def submit_baselines(self, task_ref: Any, sample: Any, specs: list[Any], *, start: bool = True,
                         started_by: str | None = None, **options: Unpack[BaselineOptions]) -> str:
        from core.jobs.kinds import baseline_config
        from core.tasks import prepare

        if not specs:
            raise JobError("No models chosen for the baseline.", "Pick at least one model.")
        task, splits = prepare(task_ref, sample, self.settings)  # fail here, with a message, on bad data
        config = baseline_config(task, task_ref, sample, specs, options)
        title = "Baseline: " + ", ".join(s.name for s in specs)
        return self.submit("baseline", title[:200], config, start,
                           plan={"task": task.to_dict(), "splits": splits.to_dict()}, started_by=started_by)

    def submit_finish(self, run_id: str, start: bool = True, started_by: str | None = None) -> str:
        """Queue the test evaluations of a stopped optimization run (the ``finish`` kind), planned here: a run
        that is running, already has results, lacks its best program, or is being finished is refused."""
        from core.optimize import plan_finish
        from core.tracking.store import RunStore

        busy = [j.id for j in self.list() if j.kind == "finish" and j.state in ("queued", "running")
                and j.config.get("run_id") == run_id]
        if busy:
            raise JobError(f"Optimization {run_id} is already being evaluated on the test set (job {busy[0]}).",
                           f"Follow it with `python -m core jobs show {busy[0]}`.")
        plan = plan_finish(RunStore(self.settings, started_by=started_by), run_id)
        return self.submit("finish", plan.title[:200], {"run_id": run_id}, start, run_id=run_id,  # found by it
                           plan={"task": plan.task.to_dict(), "splits": plan.splits.to_dict()}, started_by=started_by)

    def plan(self, job_id: str) -> dict[str, Any] | None:
        """The plan stored with the job at submission ({"task", "splits"}), or None."""
        try:
            return json.loads((self.job_dir(job_id) / PLAN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    # Reading ---------------------------------------------------------------------------------

    def _info(self, row: sqlite3.Row) -> JobInfo:
        return JobInfo(id=row["id"], kind=row["kind"], title=row["title"], state=row["state"],
                       config=json.loads(row["config"]), created=row["created"], started=row["started"],
                       ended=row["ended"], pid=row["pid"], run_id=row["run_id"],
                       error=scrub(row["error"]) if row["error"] else None,
                       attempts=row["attempts"], cancel_requested=bool(row["cancel_requested"]),
                       started_by=row["started_by"])

    def get(self, job_id: str, reap: bool = True) -> JobInfo:
        if reap:
            self.reap()
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise JobError(f"No job {job_id!r}.", "List jobs with `python -m core jobs`.")
        return self._info(row)

    def list(self, reap: bool = True) -> list[JobInfo]:
        """Every job, newest first; ``reap=False`` reads the table as is (for a group kind's ``watch``)."""
        if reap:
            self.reap()
        with self._db() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
        return [self._info(r) for r in rows]

    def frame(self) -> pd.DataFrame:
        """Jobs as a table for display: id, kind, title, state, created, started, ended, run_id, error, and the sweep
        a job belongs to (a sweep's children)."""
        rows = []
        for j in self.list():
            p = self.progress(j.id)
            rows.append({"id": j.id, "kind": j.kind, "title": j.title, "state": j.state,
                         "created": pd.to_datetime(j.created, unit="s", utc=True),
                         "started": pd.to_datetime(j.started, unit="s", utc=True) if j.started else pd.NaT,
                         "ended": pd.to_datetime(j.ended, unit="s", utc=True) if j.ended else pd.NaT,
                         "metric_calls": p.get("metric_calls_used"), "best_val_score": p.get("best_val_score"),
                         "cost_usd": p.get("total_cost_usd"), "run_id": j.run_id, "error": j.error,
                         "sweep": j.config.get("sweep")})
        return pd.DataFrame(rows, columns=["id", "kind", "title", "state", "created", "started", "ended",
                                           "metric_calls", "best_val_score", "cost_usd", "run_id", "error", "sweep"])

    def progress(self, job_id: str) -> dict[str, Any]:
        """The job's latest progress (cheap: one small JSON file); {} before it starts."""
        path = self.job_dir(job_id) / "progress.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        """Write the job's progress file (scrubbed: it may carry a provider's error message)."""
        write_json(self.job_dir(job_id) / "progress.json", scrub_data(progress))

    def log_tail(self, job_id: str, lines: int = 40) -> str:
        """The last lines of the job's worker.log, scrubbed again on the way to a page (the worker scrubs too)."""
        path = self.job_dir(job_id) / "worker.log"
        remote = getattr(self.backend, "log_tail", None)
        if remote is not None and not path.exists():
            with self._db() as db:
                row = db.execute("SELECT handle FROM jobs WHERE id=?", (job_id,)).fetchone()
            text = remote(row["handle"], lines) if row and row["handle"] else ""
            return scrub("\n".join(text.splitlines()[-lines:]))
        try:
            return scrub("\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]))
        except OSError:
            return ""

    # Scheduling ------------------------------------------------------------------------------

    def reap(self) -> None:
        """Bring remote jobs' state in (a backend's ``sync``), mark running jobs whose process is gone as
        interrupted (their kind tidies up its MLflow runs), then let group kinds (sweeps) settle their state."""
        from core.jobs.kinds import KINDS

        sync = getattr(self.backend, "sync", None)
        if sync is not None:
            with self._db() as db:
                rows = db.execute("SELECT id, handle FROM jobs WHERE state='running' AND handle IS NOT NULL").fetchall()
            for row in rows:
                try:
                    sync(self, row["id"], row["handle"])
                except Exception:
                    logger.warning("could not read job %s from its backend", row["id"], exc_info=True)
        reaped: list[str] = []
        with self._db() as db:
            rows = db.execute("SELECT id, handle FROM jobs WHERE state='running'").fetchall()
            for row in rows:
                if row["handle"] and not self.backend.alive(row["handle"]):
                    cur = db.execute("UPDATE jobs SET state='interrupted', ended=? WHERE id=? AND state='running'",
                                     (time.time(), row["id"]))
                    if cur.rowcount:
                        reaped.append(row["id"])
        for job_id in reaped:
            self.tidy_interrupted(job_id)
        for kind in KINDS.values():
            if kind.group is not None:
                try:
                    kind.group.watch(self)
                except Exception:
                    logger.exception("could not settle %s jobs", kind.name)

    def tidy_interrupted(self, job_id: str) -> None:
        """Let an interrupted job's kind end the MLflow runs it left RUNNING (KILLED, tagged interrupted)."""
        from core.jobs.kinds import KINDS

        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        kind = KINDS.get(row["kind"]) if row else None
        if kind is None or kind.on_interrupted is None:
            return
        try:
            kind.on_interrupted(self._info(row), self)
        except Exception:  # tidying up is best effort: the job is interrupted whatever happens here
            logger.exception("could not tidy up interrupted job %s", job_id)

    def schedule(self) -> list[str]:
        """Start queued jobs while fewer than ``max_jobs`` run. Returns the ids started."""
        from core.jobs.kinds import KINDS

        self.reap()
        started: list[str] = []
        groups = tuple(name for name, kind in KINDS.items() if kind.group is not None) or ("",)
        marks = ",".join("?" * len(groups))
        limit = getattr(self.backend, "max_jobs", None) or self.settings.max_jobs
        while True:
            with self._db() as db:
                db.execute("BEGIN IMMEDIATE")
                running = db.execute(f"SELECT COUNT(*) FROM jobs WHERE state='running' AND kind NOT IN ({marks})",
                                     groups).fetchone()[0]
                row = db.execute(f"SELECT id FROM jobs WHERE state='queued' AND kind NOT IN ({marks}) "
                                 "ORDER BY created LIMIT 1", groups).fetchone()
                if running >= limit or row is None:
                    db.execute("COMMIT")
                    return started
                job_id = row["id"]
                db.execute("UPDATE jobs SET state='running', started=?, ended=NULL, error=NULL, "
                           "attempts=attempts+1 WHERE id=?", (time.time(), job_id))
                db.execute("COMMIT")
            try:
                if not started:
                    init_store(self.settings)  # create/migrate the MLflow DB here, not in two workers at once
                handle = self.backend.start(job_id, self.settings)
            except Exception as exc:  # noqa: BLE001
                self.finish(job_id, "failed", error=f"could not start: {exc}")
                continue
            with self._db() as db:
                db.execute("UPDATE jobs SET handle=?, pid=? WHERE id=?",
                           (handle, int(handle) if handle.isdigit() else None, job_id))
            started.append(job_id)

    def claim(self, job_id: str) -> JobInfo:
        """Called by the worker: record its pid (a job started by hand is taken out of the queue)."""
        with self._db() as db:
            db.execute("UPDATE jobs SET pid=?, handle=COALESCE(handle, ?), "
                       "attempts=attempts + (CASE WHEN state='queued' THEN 1 ELSE 0 END), state='running', "
                       "started=COALESCE(started, ?) WHERE id=?", (os.getpid(), str(os.getpid()), time.time(), job_id))
        return self.get(job_id)

    def mark_running(self, job_id: str) -> None:
        """A group job (a sweep) runs no process of its own: its kind marks it running while its children run."""
        with self._db() as db:
            db.execute("UPDATE jobs SET state='running', started=COALESCE(started, ?), ended=NULL, error=NULL "
                       "WHERE id=?", (time.time(), job_id))

    def set_config(self, job_id: str, config: dict[str, Any]) -> None:
        """Replace a job's stored config (a group job records its children once they are queued)."""
        with self._db() as db:
            db.execute("UPDATE jobs SET config=? WHERE id=?", (json.dumps(config), job_id))

    def set_run_id(self, job_id: str, run_id: str) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET run_id=? WHERE id=?", (run_id, job_id))

    def finish(self, job_id: str, state: JobState, error: str | None = None) -> None:
        """Record a job's end; its error message is scrubbed of key values (the dashboard shows it)."""
        with self._db() as db:
            db.execute("UPDATE jobs SET state=?, ended=?, error=? WHERE id=?",
                       (state, time.time(), scrub(error) if error else error, job_id))

    # Control ---------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobInfo:
        """Stop a job between iterations (it keeps its best program); a queued job just leaves the queue."""
        job = self.get(job_id)
        group = self._group(job)
        if group is not None:
            group.cancel(job, self)
        elif job.state == "queued":
            self.finish(job_id, "cancelled", error="cancelled before it started")
        elif job.state == "running":
            with self._db() as db:
                db.execute("UPDATE jobs SET cancel_requested=1 WHERE id=?", (job_id,))
                row = db.execute("SELECT handle FROM jobs WHERE id=?", (job_id,)).fetchone()
            request = getattr(self.backend, "request_cancel", None)
            if request is not None and row and row["handle"]:
                request(row["handle"])
        elif job.state == "interrupted":
            self.finish(job_id, "cancelled", error="cancelled after interruption")
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        with self._db() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row and row[0])

    def resume(self, job_id: str, start: bool = True) -> JobInfo:
        """Queue an interrupted, cancelled or failed optimization again; it goes on from GEPA's saved state."""
        job = self.get(job_id)
        if not job.resumable:
            raise JobError(f"Job {job_id} is {job.state}; only an interrupted, cancelled or failed job of a resumable "
                           "kind can be resumed.")
        group = self._group(job)
        if group is not None:
            group.resume(job, self, start)
            return self.get(job_id)
        with self._db() as db:
            db.execute("UPDATE jobs SET state='queued', cancel_requested=0, error=NULL, ended=NULL, handle=NULL "
                       "WHERE id=?", (job_id,))
        if start:
            self.schedule()
        return self.get(job_id)

    def kill(self, job_id: str) -> None:
        """Hard-stop a job's process (SIGKILL): it becomes interrupted and resumable."""
        job = self.get(job_id)
        group = self._group(job)
        if group is not None:
            group.kill(job, self)
            return
        with self._db() as db:
            row = db.execute("SELECT handle FROM jobs WHERE id=?", (job_id,)).fetchone()
        if job.state == "running" and row and row["handle"]:
            self.backend.kill(row["handle"])

    @staticmethod
    def _group(job: JobInfo) -> Any:
        """The group behaviour of the job's kind (a sweep's), or None for a job that runs a process."""
        from core.jobs.kinds import KINDS

        kind = KINDS.get(job.kind)
        return kind.group if kind is not None else None

    def wait(self, job_id: str, timeout: float = 600.0, poll: float = 0.2) -> JobInfo:
        """Block until the job reaches a final or interrupted state (for the CLI and tests)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            job = self.get(job_id)
            if job.state in FINAL_STATES or job.state == "interrupted":
                return job
            time.sleep(poll)
        raise JobError(f"Job {job_id} did not finish within {timeout:.0f} s.")
