"""A job's process on a Ray cluster: ``python -m core.jobs.remote MAILBOX_RUN_ID`` (the Ray job's entrypoint).

It shares no disk with the dashboard: everything comes from and goes to the job's mailbox run on the MLflow tracking
server (:mod:`core.jobs.mailbox`, ``MLFLOW_TRACKING_URI`` in the job's runtime env). The worker reads ``spec.json``,
makes a temporary data dir on its node, downloads the job folder of an earlier attempt (so a resume goes on from
GEPA's last saved state on any node), runs the job's kind exactly as the local worker does, and leaves its progress,
run id, checkpoints and end state in the mailbox. A cancel request (the ``studio.job.cancel`` tag, or SIGTERM from
``ray job stop`` / a pod shutdown) stops GEPA between iterations; it keeps its best program. Provider keys come from
the cluster's own environment, never from the job; the process's streams and logs are scrubbed of them.

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
from pathlib import Path

from core.jobs import mailbox as mb
from core.jobs.kinds import JobContext
from core.jobs.worker import process_args, run_kind
from core.settings import Settings

logger = logging.getLogger(__name__)


def run(mailbox_run_id: str, tracking_uri: str, work: Path) -> str:
    """Do the job of mailbox run ``mailbox_run_id`` with ``work`` as this node's data dir; returns its end state."""
    box = mb.Mailbox(mb.client_for(tracking_uri), mailbox_run_id)
    spec = box.read_json("spec.json")
    job_id = spec["job_id"]
    settings = Settings(data_dir=work, tracking_uri=tracking_uri, artifact_root=work / "mlartifacts",
                        ray_address=None).ensure()
    folders = {"job": settings.jobs_dir / job_id, "runs": work / "runs"}
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

    def set_run_id(run_id: str) -> None:
        box.set_tags({mb.RUN_ID: run_id})

    resumed = int(spec.get("attempts") or 1) > 1 or bool(spec.get("run_id"))
    ctx = JobContext(job_id=job_id, job_dir=folders["job"], settings=settings, emit=pump.emit,
                     should_stop=pump.should_stop, set_run_id=set_run_id, run_id=spec.get("run_id"),
                     previous=(spec.get("previous") or {}) if resumed else {}, plan=spec.get("plan"),
                     started_by=spec.get("started_by"))
    outcome = run_kind(spec["kind"], spec["config"], ctx)
    pump.close()  # the last progress and checkpoint go before the end state: the dashboard stops reading then
    box.finish(outcome.state, outcome.error)
    logger.info("job %s %s%s", job_id, outcome.state, f": {outcome.error}" if outcome.error else "")
    return outcome.state


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
