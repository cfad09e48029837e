"""A job's process on a Ray cluster: ``python -m core.jobs.remote MAILBOX_RUN_ID`` (the Ray job's entrypoint).

It shares no disk with the dashboard: everything comes from and goes to the job's mailbox run on the MLflow tracking
server (:mod:`core.jobs.mailbox`, ``MLFLOW_TRACKING_URI`` in the job's runtime env; its runs go under the experiment
root and its prompt to the Unity Catalog schema the runtime env names, as the dashboard's). The worker reads
``spec.json``, makes a temporary data dir on its node, downloads the job folder of an earlier attempt (so a resume goes
on from GEPA's last saved state on any node), runs the job's kind exactly as the local worker does, and leaves its
progress, run id, checkpoints and end state in the mailbox. A cancel request (the ``studio.job.cancel`` tag, or SIGTERM
from ``ray job stop`` / a pod shutdown) stops GEPA between iterations; it keeps its best program. Provider keys come
from the cluster's own environment, never from the job; the process's streams and logs are scrubbed of them: of every
variable the job's model specs name as ``api_key_env`` too, whatever its name looks like (``--key-env MY_THING``), since
this node has no model catalog to read them from (:func:`core.config.secrets.declare_key_names`).

A rate limiter that falls back from the cluster's actor to a per-node store (:mod:`core.lm.limits`) is said in every
progress the job writes (``warnings``, ``limiter_fallback``) and tagged on its runs (``studio.limiter_fallback``).

Exit code 0 for a succeeded or cancelled job, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from core.config import secrets
from core.config.settings import load_settings
from core.jobs import mailbox as mb
from core.jobs.kinds import JobContext
from core.jobs.worker import process_args, run_kind
from core.lm.limits import fallback_notice
from core.scoring.user import relocate
from core.tracking.store import TAG

LIMITER_TAG = f"{TAG}limiter_fallback"

logger = logging.getLogger(__name__)


def run(mailbox_run_id: str, tracking_uri: str, work: Path) -> str:
    """Do the job of mailbox run ``mailbox_run_id`` with ``work`` as this node's data dir; returns its end state."""
    box = mb.Mailbox(mb.client_for(tracking_uri), mailbox_run_id)
    spec = box.read_json("spec.json")
    secrets.declare_key_names(secrets.key_env_names(spec))  # before anything runs that could print a key
    job_id = spec["job_id"]
    # read as everywhere (the root and the Unity Catalog schema come in the runtime env: core.jobs.ray_backend); the
    # data dir is this node's own, the results the tracking server's, and the job runs here, never on a cluster
    settings = replace(load_settings(work), tracking_uri=tracking_uri, ray_address=None, metrics_dir=None).ensure()
    folders = {"job": settings.jobs_dir / job_id, "runs": work / "runs"}
    relocate(_write_files(spec.get("files") or {}, work / "files"))  # your program and metric, as submitted
    for prefix, folder in folders.items():
        folder.mkdir(parents=True, exist_ok=True)
        got = box.download(folder, prefix)
        if got:
            logger.info("job %s: %d files of earlier attempts in %s", job_id, got, folder)
    checkpointer = mb.Checkpointer(box, folders)
    checkpointer.upload()  # what was downloaded is known, so it is not sent back
    box.set_tags({mb.PID: os.getpid(), mb.HOST: socket.gethostname(), mb.ATTEMPT: spec.get("attempts", 1)})
    pump = mb.Pump(box, checkpointer).start()
    signal.signal(signal.SIGTERM, lambda *_: pump.request_stop())  # `ray job stop`: stop as a cancel does

    notices = Notices(pump.emit)

    def set_run_id(run_id: str) -> None:
        notices.run_ids.add(run_id)
        box.set_tags({mb.RUN_ID: run_id})

    resumed = int(spec.get("attempts") or 1) > 1 or bool(spec.get("run_id"))
    ctx = JobContext(job_id=job_id, job_dir=folders["job"], settings=settings, emit=notices.emit,
                     should_stop=pump.should_stop, set_run_id=set_run_id, run_id=spec.get("run_id"),
                     previous=(spec.get("previous") or {}) if resumed else {}, plan=spec.get("plan"),
                     started_by=spec.get("started_by"))
    outcome = run_kind(spec["kind"], spec["config"], ctx)
    notices.close(ctx)
    pump.close()  # the last progress and checkpoint go before the end state: the dashboard stops reading then
    box.finish(outcome.state, outcome.error)
    logger.info("job %s %s%s", job_id, outcome.state, f": {outcome.error}" if outcome.error else "")
    return outcome.state


def _write_files(files: dict[str, str], folder: Path) -> dict[str, Path]:
    """The users' files the job brought (path -> text), written under ``folder`` with their own names (each in a
    folder of its own); original path -> its copy."""
    copies = {}
    for i, (path, text) in enumerate(sorted(files.items())):
        copy = folder / str(i) / Path(path).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(text.encode("utf-8"))  # byte for byte: the program's hash is checked
        copies[path] = copy
    return copies


def with_notices(progress: dict[str, Any]) -> dict[str, Any]:
    """``progress`` with what the user must be told about this process (the limiter's fallback) added."""
    notice = fallback_notice()
    if not notice:
        return progress
    warnings = [w for w in progress.get("warnings") or [] if w != notice]
    return {**progress, "warnings": [*warnings, notice], "limiter_fallback": True}


class Notices:
    """The job's progress sink with the notices added to every progress, and tagged on the job's runs at the end."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self._emit = emit
        self.last: dict[str, Any] | None = None
        self.run_ids: set[str] = set()  # the job's main run (set_run_id); its other runs are found by their job tag

    def emit(self, progress: dict[str, Any]) -> None:
        self.last = dict(progress)
        self._emit(with_notices(progress))

    def close(self, ctx: JobContext) -> None:
        """Say it once more (a fallback after the last progress) and tag the job's runs with it."""
        notice = fallback_notice()
        if not notice:
            return
        self._emit(with_notices(self.last or {}))
        try:
            store = ctx.store()
            runs = store.list_runs(job_id=ctx.job_id)
            for run_id in self.run_ids | set(runs["run_id"].astype(str) if not runs.empty else []):
                store.set_tags(run_id, {LIMITER_TAG: notice})
        except Exception:
            logger.warning("could not tag the job's runs with the limiter's fallback", exc_info=True)
        logger.warning("%s", notice)


def main(argv: list[str] | None = None) -> int:
    args = process_args(argv, "python -m core.jobs.remote MAILBOX_RUN_ID")
    if args is None:
        return 2
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri:
        print("MLFLOW_TRACKING_URI is not set: the job cannot reach its mailbox.", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gepa-studio-job-"))
    try:
        state = run(args[0], tracking_uri, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if state in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    raise SystemExit(main())
