"""A remote job's mailbox: one MLflow run per job on the tracking server, the only channel between the dashboard
and a worker on a Ray cluster (no disk is shared between them).

The mailbox run lives in the mailbox experiment under the experiment root (``<root>/_jobs``; ``gepa-studio-jobs`` under
the default root: :func:`core.tracking.experiments.mailbox_experiment`, which Compare and the run lists never show), is
tagged ``studio.job_id`` and is reused by every attempt of the job (found again by that tag):

- ``spec.json`` (artifact): what the worker runs (kind, config, plan, started_by, run_id, previous progress,
  attempts, job_id), written by the dashboard before each submission;
- tags the worker sets: ``studio.job.progress`` (JSON, scrubbed; a larger one goes to the ``progress.json`` artifact
  and the tag says so), ``studio.job.run_id``, ``studio.job.pid`` / ``studio.job.host`` / ``studio.job.attempt`` at
  start, ``studio.job.checkpoint`` after each upload, and ``studio.job.state`` + ``studio.job.error`` at the end;
- the tag the dashboard sets: ``studio.job.cancel`` (``1``: stop between iterations);
- ``job/…`` and ``runs/…`` artifacts: the worker's job folder (GEPA's ``log_dir``) and evaluation records, uploaded
  while it runs (:class:`Checkpointer`) and downloaded by a resumed attempt on any node.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from core.config.secrets import scrub, scrub_data
from core.tracking.experiments import Where, ensure_experiment, mailbox_experiment

logger = logging.getLogger(__name__)

JOB_TAG = "studio.job_id"
T = "studio.job."
PROGRESS, RUN_ID, STATE, ERROR, CANCEL = T + "progress", T + "run_id", T + "state", T + "error", T + "cancel"
PID, HOST, ATTEMPT, CHECKPOINT = T + "pid", T + "host", T + "attempt", T + "checkpoint"
PROGRESS_ARTIFACT = "@progress.json"  # the progress tag's value when the progress is in the artifact
MAX_TAG = 7000  # MLflow keeps tag values up to 8,000 characters


def client_for(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def find_run(client: Any, job_id: str, where: Where | None = None) -> str | None:
    """The mailbox run of ``job_id`` in the mailbox experiment of ``where`` (None: of the default root), or None."""
    exp = client.get_experiment_by_name(mailbox_experiment(where))
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{JOB_TAG}` = '{job_id}'", max_results=1)
    return runs[0].info.run_id if runs else None


def open_run(client: Any, job_id: str, where: Where | None = None) -> str:
    """The mailbox run of ``job_id``, created on first use (with the mailbox experiment of ``where``; None: of the
    default root)."""
    found = find_run(client, job_id, where)
    if found:
        return found
    exp_id = ensure_experiment(client, where, mailbox_experiment(where))
    return client.create_run(exp_id, run_name=f"job {job_id}", tags={JOB_TAG: job_id}).info.run_id


class Mailbox:
    """Reads and writes one job's mailbox run."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def tags(self) -> dict[str, str]:
        return dict(self.client.get_run(self.run_id).data.tags)

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, scrub(str(v))) for k, v in tags.items()])

    def write_json(self, name: str, data: Any) -> None:
        self.client.log_text(self.run_id, json.dumps(scrub_data(data), default=str), name)

    def read_json(self, name: str) -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            path = self.client.download_artifacts(self.run_id, name, tmp)
            return json.loads(Path(path).read_text(encoding="utf-8"))

    # The worker's side -------------------------------------------------------------------------

    def write_progress(self, progress: dict[str, Any]) -> None:
        text = json.dumps(scrub_data(progress), default=str)
        if len(text) > MAX_TAG:
            self.client.log_text(self.run_id, text, "progress.json")
            text = PROGRESS_ARTIFACT
        self.set_tags({PROGRESS: text})

    def finish(self, state: str, error: str | None) -> None:
        self.set_tags({STATE: state, ERROR: (error or "")[:MAX_TAG]})
        status = {"succeeded": "FINISHED", "cancelled": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status=status)

    # The dashboard's side ----------------------------------------------------------------------

    def progress(self, tags: dict[str, str]) -> dict[str, Any] | None:
        """The progress the tags carry (read from the artifact when it was too large for a tag), or None."""
        text = tags.get(PROGRESS)
        if not text:
            return None
        try:
            return self.read_json("progress.json") if text == PROGRESS_ARTIFACT else json.loads(text)
        except (OSError, ValueError):
            return None

    def download(self, folder: Path, prefix: str) -> int:
        """Download the ``prefix/`` artifacts into ``folder`` (a resumed attempt); returns the number of files."""
        if not self.client.list_artifacts(self.run_id, prefix):
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(self.client.download_artifacts(self.run_id, prefix, tmp))
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, folder, dirs_exist_ok=True)
        return sum(1 for p in folder.rglob("*") if p.is_file())


class Checkpointer:
    """Uploads the files of some folders to the mailbox whose size or mtime changed since the last upload.

    A file being written while it is copied (its stat differs before and after the copy) waits for the next round,
    so a half-written ``gepa_state.bin`` never replaces a whole one.
    """

    def __init__(self, mailbox: Mailbox, folders: dict[str, Path]) -> None:
        self.mailbox, self.folders = mailbox, folders
        self.seen: dict[Path, tuple[int, int]] = {}

    def upload(self) -> int:
        sent = 0
        with tempfile.TemporaryDirectory() as tmp:
            for prefix, folder in self.folders.items():
                for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".tmp")):
                    try:
                        before = path.stat()
                        key = (before.st_size, before.st_mtime_ns)
                        if self.seen.get(path) == key:
                            continue
                        rel = path.relative_to(folder)
                        copy = Path(tmp) / prefix / rel
                        copy.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, copy)
                        after = path.stat()
                    except OSError:
                        continue
                    if (after.st_size, after.st_mtime_ns) != key:
                        continue
                    self.mailbox.client.log_artifact(self.mailbox.run_id, str(copy), str(Path(prefix) / rel.parent))
                    self.seen[path] = key
                    sent += 1
        if sent:
            self.mailbox.set_tags({CHECKPOINT: f"{time.time():.3f}"})
        return sent


class Pump:
    """The worker's link to its mailbox, on one background thread: progress written at most once a second (the last
    one always), the cancel tag read every ``cancel_every`` seconds, changed files uploaded every ``upload_every``
    seconds."""

    def __init__(self, mailbox: Mailbox, checkpointer: Checkpointer, *, upload_every: float = 5.0,
                 period: float = 1.0, cancel_every: float = 2.0) -> None:
        self.mailbox, self.checkpointer = mailbox, checkpointer
        self.upload_every, self.period, self.cancel_every = upload_every, period, cancel_every
        self.lock, self.wake = threading.Lock(), threading.Event()
        self.pending: dict[str, Any] | None = None
        self.cancelled = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="mailbox-pump", daemon=True)

    def start(self) -> "Pump":
        self.thread.start()
        return self

    def emit(self, progress: dict[str, Any]) -> None:
        with self.lock:
            self.pending = dict(progress)

    def should_stop(self) -> bool:
        return self.cancelled

    def request_stop(self) -> None:
        self.cancelled = True

    def _guarded(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:  # the tracking server may blip: the next round tries again
            logger.warning("could not %s", what, exc_info=True)

    def _flush(self) -> None:
        with self.lock:
            progress, self.pending = self.pending, None
        if progress is not None:
            self.mailbox.write_progress(progress)

    def _poll_cancel(self) -> None:
        if self.mailbox.tags().get(CANCEL) == "1":
            self.cancelled = True

    def _loop(self) -> None:
        last_upload = last_cancel = time.monotonic()
        while not self.stopping.wait(self.period):
            self._guarded("write the job's progress", self._flush)
            if time.monotonic() - last_cancel >= self.cancel_every:
                self._guarded("read the cancel request", self._poll_cancel)
                last_cancel = time.monotonic()
            if time.monotonic() - last_upload >= self.upload_every:
                self._guarded("upload the job's folder", self.checkpointer.upload)
                last_upload = time.monotonic()

    def close(self) -> None:
        """Stop the thread, then write the last progress and upload what changed."""
        self.stopping.set()
        self.thread.join(timeout=30)
        self._guarded("write the job's progress", self._flush)
        self._guarded("upload the job's folder", self.checkpointer.upload)
