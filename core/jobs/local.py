"""The local backend: each job is ``python -m core.jobs.worker JOB_ID`` in a new OS session (it outlives the
dashboard). Another executor (Ray, MLflow jobs) is another class with the same two methods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from core.config.secrets import environ_snapshot  # MLflow's telemetry thread may change os.environ while it is copied
from core.config.settings import Settings
from core.tracking.procs import pid_alive


class ProcessBackend:
    """Each job is a worker process in a new session; its handle is the pid."""

    def start(self, job_id: str, settings: Settings) -> str:
        job_dir = settings.jobs_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        env = {**environ_snapshot(), "GEPA_STUDIO_DATA_DIR": str(settings.data_dir),
               "MLFLOW_TRACKING_URI": settings.tracking_uri, "GEPA_STUDIO_EXPERIMENT_ROOT": settings.experiment_root,
               "PYTHONUNBUFFERED": "1"}
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(job_dir / "worker.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "core.jobs.worker", job_id], cwd=root, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        return str(proc.pid)

    def alive(self, handle: str) -> bool:
        if not handle.isdigit():  # a Ray job's handle from when a cluster was set: not a process of this machine
            return False
        return pid_alive(int(handle))



    def kill(self, handle: str) -> None:
        try:
            os.killpg(int(handle), signal.SIGKILL)
        except ProcessLookupError:
            pass
