"""Many processes on one fresh data dir at once: opening the MLflow store, and submitting jobs.

Without the file lock, MLflow's first SQLite migration races (``table latest_metrics already exists``,
``Online migration expected to match one row``) and a job submitted at the same time as another ends
"failed: could not start". Each process here loads its imports first, then waits for one start signal,
so the store is opened by all of them within milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from core.config.errors import StoreError
from core.jobs import JobManager
from core.tracking.store import RunStore, lock_path
from tests.scenario import write_csv

pytestmark = pytest.mark.fresh_store  # the first use of a store is what these tests race on
ROOT = Path(__file__).resolve().parents[2]
N = 4

WAIT_FOR_GO = """
import os, sys, time
go = sys.argv[1]
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
"""

OPEN_STORE = """
from core.config.settings import load_settings
from core.tracking.store import RunStore
import mlflow.store.tracking.sqlalchemy_store  # the slow imports happen before the start signal
""" + WAIT_FOR_GO + """
store = RunStore(load_settings())
run_id = store.start_run("baseline", "race", run_name=f"p{os.getpid()}")
store.log_metrics(run_id, {"accuracy": 0.5})
store.end_run(run_id)
print(run_id)
"""

SUBMIT = """
from core.jobs import JobManager
from core.lm.models import openai_compatible
from core.config.settings import load_settings
from core.tasks import SampleSpec, TaskRef
import mlflow.store.tracking.sqlalchemy_store
""" + WAIT_FOR_GO + """
manager = JobManager(load_settings())
spec = openai_compatible("stub-small", "stub-small", sys.argv[3])
job_id = manager.submit_baselines(TaskRef(kind="file", source=sys.argv[2]), SampleSpec(1, 0, 1, seed=42), [spec],
                                  threads=2, cache=False)
print(job_id)
"""


def start_together(code: str, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    """Start N processes running ``code``, let them load, then release them at once."""
    go = tmp_path / f"go-{time.time_ns()}"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(go), *args], cwd=ROOT, env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(N)]
    deadline = time.time() + 120  # their imports (MLflow, SQLAlchemy) take seconds on a busy machine
    while len(list(tmp_path.glob(f"{go.name}.ready.*"))) < N and time.time() < deadline:
        if any(p.poll() is not None for p in procs):
            break  # one died while loading: its error is reported by finish()
        time.sleep(0.05)
    go.touch()
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str, str]]:
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, out, err))
    return results


@pytest.mark.slow
def test_processes_opening_a_fresh_store_at_once_all_succeed(settings, tmp_path):
    assert not (settings.data_dir / "mlflow.db").exists()
    results = finish(start_together(OPEN_STORE, tmp_path))
    failures = [err[-1500:] for rc, _, err in results if rc != 0]
    assert not failures, failures[0]
    run_ids = {out.strip() for _, out, _ in results}
    assert len(run_ids) == N
    # The store works afterwards: one experiment for the task, every run in it, finished, with its metric.
    store = RunStore(settings)
    assert [e.name for e in store.experiments()] == ["gepa-studio/race"]
    runs = store.list_runs(task="race")
    assert set(runs["run_id"]) == run_ids
    assert set(runs["status"]) == {"FINISHED"} and set(runs["accuracy"]) == {0.5}


@pytest.mark.slow
def test_job_submissions_at_once_all_start_and_succeed(stub, settings, tmp_path):
    csv = write_csv(tmp_path / "s.csv", 4)
    results = finish(start_together(SUBMIT, tmp_path, str(csv), stub.base_url, env={"GEPA_STUDIO_MAX_JOBS": str(N)}))
    failures = [err[-1500:] for rc, _, err in results if rc != 0]
    assert not failures, failures[0]
    job_ids = {out.strip() for _, out, _ in results}
    assert len(job_ids) == N
    manager = JobManager(settings)
    jobs = [manager.wait(job_id, timeout=300) for job_id in job_ids]
    errors = {j.id: (j.state, j.error, manager.log_tail(j.id)[-800:]) for j in jobs if j.state != "succeeded"}
    assert not errors, errors
    assert [j.attempts for j in jobs] == [1] * N  # each started once, by its own worker
    job_runs = {manager.progress(j)["runs"]["stub-small"]["run_id"] for j in job_ids}
    runs = RunStore(settings).list_runs(kind="baseline")
    assert set(runs["run_id"]) == job_runs and len(job_runs) == N and set(runs["status"]) == {"FINISHED"}


def test_a_store_held_by_another_process_is_a_clear_error(settings, monkeypatch):
    monkeypatch.setattr("core.tracking.store.LOCK_TIMEOUT_S", 0.3)
    with FileLock(str(lock_path(settings))):  # another open file: flock conflicts as with another process
        started = time.perf_counter()
        with pytest.raises(StoreError, match="Another process has held") as err:
            RunStore(settings)
        assert time.perf_counter() - started < 5
    assert "wait for it" in err.value.hint
    RunStore(settings).list_runs()  # the lock is free again: the store opens


def test_a_broken_store_file_is_a_message_with_a_way_out(settings):
    (settings.data_dir / "mlflow.db").write_bytes(b"this is not a SQLite database" * 100)
    with pytest.raises(StoreError, match="could not be opened") as err:
        RunStore(settings)
    assert "move the file aside" in err.value.hint
