"""The Ray backend: each job is a Ray job (the Jobs API of ``ray[default]``) on the cluster the settings name.

Why the Jobs API and not detached tasks: a Ray job is a process with its own log and status that outlives the
dashboard (a detached task dies with its driver), ``stop_job`` stops it, Ray's own dashboard lists it, and it mirrors
the local design (one process per job: :mod:`core.jobs.local`).

- What travels: ``runtime_env={"py_modules": [core/], "env_vars": {...}}`` (only the ``core`` package, a few MB, cached
  by Ray by its hash). ``env_vars``: ``MLFLOW_TRACKING_URI`` (the settings' tracking server),
  ``GEPA_STUDIO_EXPERIMENT_ROOT`` always (the job's runs land where the dashboard reads them, whatever the cluster),
  ``GEPA_STUDIO_UC_CATALOG`` / ``GEPA_STUDIO_UC_SCHEMA`` when set (where the job's prompt is registered),
  ``GEPA_STUDIO_LIMITER=ray`` (one rate limit per provider across the cluster: ``core.lm.limits``),
  ``GEPA_STUDIO_TRACES`` and ``MLFLOW_REGISTRY_URI`` when set here, ``PYTHONUNBUFFERED=1``. Never a key value: provider
  keys come from the cluster's own environment, and the cluster's Python must have requirements.txt installed
  (docs/distributed.md; ``GEPA_STUDIO_RAY_PIP=1`` has Ray install it into each job's environment instead, cached per
  node).
- Your own program's file and a metric function's file (``spec.json``'s ``files``: path -> text, read when the job
  is submitted) travel in the mailbox too: the worker writes them on its node and loads them in their place.
- The entrypoint is ``python -m core.jobs.remote <mailbox run id>`` with ``entrypoint_num_cpus=0`` (jobs wait on LLM
  servers); the submission id is ``gepa-<job id>-a<attempt>``, so submitting an attempt twice is harmless.
- No shared disk: the registry stays on the dashboard's machine and everything between it and a worker goes through
  the job's mailbox run on the tracking server (:mod:`core.jobs.mailbox`), so a tracking URI that is not a server is
  refused. ``sync`` reads the mailbox (at most once a second per job) into the registry: progress, run id and the end
  state. A Ray job that ended with no end state in its mailbox (worker killed, node lost) is not ``alive``: the
  registry reads it as ``interrupted``, and a resume goes on from the checkpoint in the mailbox on any node.
- Cancel: the mailbox's cancel tag (the worker polls it); ``kill``: ``stop_job`` (SIGTERM, then SIGKILL).

Ray is imported only here, and only once a job is submitted or read: without a cluster nothing needs it installed.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

from core.config.errors import JobError
from core.config.secrets import scrub
from core.config.settings import DEFAULT_EXPERIMENT_ROOT, ROOT_ENV, Settings
from core.jobs import mailbox as mb
from core.jobs.local import ProcessBackend
from core.scoring.user import user_files

logger = logging.getLogger(__name__)

PREFIX = "ray:"
ACTIVE = ("PENDING", "RUNNING")
FRESH_S = 1.0  # how long a read of Ray or of a mailbox serves the registry's next reap
PASSED_ENV = ("GEPA_STUDIO_TRACES", "MLFLOW_REGISTRY_URI")  # passed on from this process when set (never a key)


def is_server(uri: str) -> bool:
    """Can workers on other machines reach this tracking URI? (A server or Databricks, not a local file.)"""
    return uri.startswith(("http://", "https://", "databricks"))


def submission_id(job_id: str, attempt: int) -> str:
    return f"gepa-{job_id}-a{attempt}"


def job_of(handle: str) -> str:
    """The job id of a handle ``ray:gepa-<job id>-a<attempt>``."""
    return handle.removeprefix(PREFIX).removeprefix("gepa-").rsplit("-a", 1)[0]


def runtime_env(settings: Settings) -> dict[str, Any]:
    """What travels with a job: the ``core`` package and a few variables, never a key value."""
    env = {"MLFLOW_TRACKING_URI": settings.tracking_uri, "GEPA_STUDIO_LIMITER": "ray", "PYTHONUNBUFFERED": "1"}
    # the root always travels (a cluster's own GEPA_STUDIO_EXPERIMENT_ROOT must not move the dashboard's runs)
    env.update({k: v for k, v in ((ROOT_ENV, settings.experiment_root), ("GEPA_STUDIO_UC_CATALOG", settings.uc_catalog),
                                  ("GEPA_STUDIO_UC_SCHEMA", settings.uc_schema)) if v})
    env.update({k: os.environ[k] for k in PASSED_ENV if os.environ.get(k)})
    core = Path(__file__).resolve().parents[1]
    out: dict[str, Any] = {"py_modules": [str(core)], "excludes": ["__pycache__"], "env_vars": env}
    if os.environ.get("GEPA_STUDIO_RAY_PIP") == "1":  # install requirements.txt on the cluster (cached by Ray)
        lines = (core.parent / "requirements.txt").read_text(encoding="utf-8").splitlines()
        out["pip"] = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    return out


def require_ray() -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError as exc:
        raise JobError("Ray is not installed here, but a Ray cluster is set (RAY_ADDRESS or the Home page).",
                       "Install it with `pip install 'ray[default]'` (the version the cluster runs), or clear the "
                       "cluster address to run jobs on this machine.") from exc
    return JobSubmissionClient


class RayBackend:
    """Jobs as Ray jobs on ``settings.ray_address``; handles are ``ray:<submission id>``. Its ``tracking_uri`` and
    ``experiment_root`` name the mailbox experiment (:func:`core.tracking.experiments.mailbox_experiment`)."""

    def __init__(self, address: str, tracking_uri: str, max_jobs: int = 16,
                 experiment_root: str = DEFAULT_EXPERIMENT_ROOT) -> None:
        self.address, self.tracking_uri, self.max_jobs = address, tracking_uri, max_jobs
        self.experiment_root = experiment_root
        self._jobs: Any = None
        self._mlflow: Any = None
        self._boxes: dict[str, str] = {}  # job id -> its mailbox run id
        self._status: dict[str, tuple[float, str | None]] = {}  # handle -> (read at, Ray status)
        self._tags: dict[str, tuple[float, dict[str, str]]] = {}  # job id -> (read at, mailbox tags)
        self._synced: dict[str, str] = {}  # job id -> the progress tag last written into the registry
        self.local = ProcessBackend()  # jobs started on this machine before the cluster was set

    @classmethod
    def for_settings(cls, settings: Settings) -> "RayBackend":
        """Built without calling Ray: the first submission or read connects."""
        return cls(str(settings.ray_address), settings.tracking_uri,
                   max(1, int(os.environ.get("GEPA_STUDIO_RAY_MAX_JOBS") or 16)), settings.experiment_root)

    # Clients -----------------------------------------------------------------------------------

    def jobs(self) -> Any:
        if self._jobs is None:
            client_cls = require_ray()
            # Ray's job client says "Creating a file package…" / "Package … already exists" at INFO on every submission
            for name in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
                logging.getLogger(name).setLevel(logging.WARNING)
            try:
                self._jobs = client_cls(self.address)
            except Exception as exc:
                raise JobError(f"Cannot reach the Ray cluster at {self.address}: {exc}",
                               "Check the address (the head's dashboard port, e.g. http://head:8265) and that the "
                               "cluster is up, or clear it to run jobs on this machine.") from exc
        return self._jobs

    def mlflow(self) -> Any:
        if self._mlflow is None:
            self._mlflow = mb.client_for(self.tracking_uri)
        return self._mlflow

    def mailbox(self, job_id: str, create: bool = False) -> mb.Mailbox | None:
        run_id = self._boxes.get(job_id)
        if run_id is None:
            run_id = (mb.open_run(self.mlflow(), job_id, self) if create
                      else mb.find_run(self.mlflow(), job_id, self))
            if run_id is None:
                return None
            self._boxes[job_id] = run_id
        return mb.Mailbox(self.mlflow(), run_id)

    # The Backend protocol ----------------------------------------------------------------------

    def start(self, job_id: str, settings: Settings) -> str:
        if not is_server(settings.tracking_uri):
            raise JobError(f"Jobs on a Ray cluster need an MLflow tracking server; this one is "
                           f"{settings.tracking_uri}.",
                           "Workers on other machines cannot write a local file: start `mlflow server` and set "
                           "MLFLOW_TRACKING_URI=http://<host>:5000, or clear the cluster address to run jobs here.")
        from core.jobs.registry import JobManager

        manager = JobManager(settings, backend=self)
        job = manager.get(job_id, reap=False)
        attempt = max(1, job.attempts)
        box = self.mailbox(job_id, create=True)
        assert box is not None
        box.write_json("spec.json", {"job_id": job_id, "kind": job.kind, "config": job.config,
                                     "plan": manager.plan(job_id), "started_by": job.started_by, "run_id": job.run_id,
                                     "previous": manager.progress(job_id), "attempts": attempt,
                                     "files": user_files(job.config)})
        box.set_tags({mb.STATE: "", mb.ERROR: "", mb.CANCEL: "0", mb.ATTEMPT: attempt})
        self._tags.pop(job_id, None)
        self.mlflow().update_run(box.run_id, status="RUNNING")
        sid = submission_id(job_id, attempt)
        try:
            self.jobs().submit_job(entrypoint=f"python -m core.jobs.remote {box.run_id}", submission_id=sid,
                                   runtime_env=runtime_env(settings), entrypoint_num_cpus=0,
                                   metadata={"gepa_studio_job": job_id, "mailbox_run": box.run_id})
        except Exception as exc:
            if "already exists" not in str(exc):  # this attempt was submitted before: it is the same job
                raise JobError(f"The Ray cluster at {self.address} refused the job: {scrub(str(exc))}",
                               "Check the cluster (Ray's dashboard lists its jobs) and resume the job.") from exc
        return PREFIX + sid

    def status(self, handle: str, fresh_s: float = FRESH_S) -> str | None:
        """The Ray job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), or None when Ray does not know it."""
        seen = self._status.get(handle)
        if seen and time.monotonic() - seen[0] < fresh_s:
            return seen[1]
        try:
            status: str | None = str(self.jobs().get_job_status(handle.removeprefix(PREFIX)).value)
        except RuntimeError as exc:  # "job ... does not exist"
            if "does not exist" not in str(exc):
                raise
            status = None
        self._status[handle] = (time.monotonic(), status)
        return status

    def alive(self, handle: str) -> bool:
        if not handle.startswith(PREFIX):  # a local job started before the cluster was set: still a process here
            return self.local.alive(handle)
        # The status the last sync saw: the mailbox was read after it, so an ended job's end state is in already.
        seen = self._status.get(handle)
        if seen and time.monotonic() - seen[0] < 30:
            return seen[1] in ACTIVE
        try:
            return self.status(handle) in ACTIVE
        except Exception:  # a cluster out of reach says nothing of its jobs: they are not read as interrupted
            logger.warning("could not ask the Ray cluster at %s about %s", self.address, handle, exc_info=True)
            return True

    def sync(self, manager: Any, job_id: str, handle: str) -> None:
        """Bring the mailbox's progress, run id and end state into the registry (Ray and MLflow read ≤ once a
        second)."""
        if not handle.startswith(PREFIX):
            return  # a local process writes its own progress
        status = self.status(handle)
        ended = status not in ACTIVE
        seen = self._tags.get(job_id)
        if seen and not ended and time.monotonic() - seen[0] < FRESH_S:
            return
        box = self.mailbox(job_id)
        if box is None:
            return
        tags = box.tags()
        self._tags[job_id] = (time.monotonic(), tags)
        if tags.get(mb.PROGRESS) and tags[mb.PROGRESS] != self._synced.get(job_id):
            progress = box.progress(tags)
            if progress is not None:
                manager.write_progress(job_id, progress)
                self._synced[job_id] = tags[mb.PROGRESS]
        if tags.get(mb.RUN_ID):
            manager.set_run_id(job_id, tags[mb.RUN_ID])
        attempt = handle.rsplit("-a", 1)[-1]
        if tags.get(mb.STATE) and tags.get(mb.ATTEMPT, attempt) == attempt:
            manager.finish(job_id, tags[mb.STATE], error=tags.get(mb.ERROR) or None)

    def request_cancel(self, handle: str) -> None:
        if not handle.startswith(PREFIX):
            return  # a local process reads the registry's flag
        box = self.mailbox(job_of(handle))
        if box is not None:
            box.set_tags({mb.CANCEL: "1"})

    def kill(self, handle: str) -> None:
        if not handle.startswith(PREFIX):
            return self.local.kill(handle)
        try:
            self.jobs().stop_job(handle.removeprefix(PREFIX))
        except RuntimeError as exc:
            if "does not exist" not in str(exc):
                raise

    def log_tail(self, handle: str, lines: int = 40) -> str:
        try:
            text = self.jobs().get_job_logs(handle.removeprefix(PREFIX))
        except Exception as exc:  # noqa: BLE001 - a log is shown, never a reason to fail a page
            return f"(the job's log could not be read from the Ray cluster: {exc})"
        return scrub("\n".join(text.splitlines()[-lines:]))


def cluster_info(address: str) -> dict[str, Any]:
    """What the Home page's Check shows: Ray's version, and the cluster's alive nodes and CPUs when the API gives them.
    Raises JobError (with a hint) when the cluster cannot be reached."""
    client = RayBackend(address, "").jobs()
    info: dict[str, Any] = {"address": address, "ray_version": None, "nodes": None, "cpus": None}
    try:
        with urllib.request.urlopen(address.rstrip("/") + "/api/version", timeout=10) as reply:
            info["ray_version"] = json.loads(reply.read()).get("ray_version")
    except (OSError, ValueError):
        info["ray_version"] = client.get_version()  # the Jobs API's version, at least
    try:
        from ray.util.state import list_nodes

        nodes = [n for n in list_nodes(address=address, detail=True, timeout=10) if n.state == "ALIVE"]
        info["nodes"] = len(nodes)
        info["cpus"] = sum(float((n.resources_total or {}).get("CPU", 0)) for n in nodes)
    except Exception:
        logger.info("could not list the nodes of %s", address, exc_info=True)
    return info
