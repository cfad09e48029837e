"""GEPA jobs through the Ray backend: a real Ray head runs each job as a Ray job, the workers log to a real MLflow
tracking server and answer to the stub server over HTTP; the registry here learns everything from the mailbox."""

import os
import signal
import time

import pytest

from core.jobs import JobManager
from core.jobs import mailbox as mb
from core.jobs.ray_backend import RayBackend
from core.tasks import TaskRef
from core.tracking.store import RunStore
from tests.core.test_optimize import http_config
from tests.scenario import write_csv
from tests.stub_server import gepa_responder

pytestmark = pytest.mark.slow


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def tags_of(tracking_server, job_id):
    client = mb.client_for(tracking_server)
    return mb.Mailbox(client, mb.find_run(client, job_id)).tags()


def wait_for(manager, job_id, check, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = manager.get(job_id)
        if check(job, manager.progress(job_id)):
            return job
        assert job.state in ("queued", "running"), (job.state, job.error, manager.log_tail(job_id))
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never got there: {manager.progress(job_id)}\n{manager.log_tail(job_id)}")


def test_optimize_job_runs_on_ray_and_reports_back(ray_settings, tracking_server, ref, stub):
    stub.responder = gepa_responder
    manager = JobManager(ray_settings)
    assert isinstance(manager.backend, RayBackend)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=40))
    job = manager.wait(job_id, timeout=120)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    progress = manager.progress(job_id)  # filled here by sync, from the mailbox: no disk is shared
    assert progress["phase"] == "done" and progress["metric_calls_used"] >= 40
    client = mb.client_for(tracking_server)
    run = client.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["optimized_test_accuracy"] >= run.data.metrics["original_test_accuracy"]
    assert not (ray_settings.jobs_dir / job_id / "gepa").exists()  # GEPA's folder was on the worker's node
    tags = tags_of(tracking_server, job_id)
    assert int(tags[mb.PID]) != os.getpid() and tags[mb.STATE] == "succeeded" and tags[mb.RUN_ID] == job.run_id
    assert f"job {job_id} succeeded" in manager.log_tail(job_id, 400)
    assert {r["body"]["model"] for r in stub.chat_requests()} == {"stub-small", "stub-large"}


def test_cancel_a_running_ray_job_keeps_its_best_program(ray_settings, tracking_server, ref, stub):
    stub.responder = gepa_responder
    stub.latency_s = 0.02
    manager = JobManager(ray_settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=400, use_merge=False))
    wait_for(manager, job_id, lambda job, p: p.get("iteration", 0) >= 1)
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=60)
    assert job.state == "cancelled", (job.error, manager.log_tail(job_id))
    assert manager.progress(job_id)["metric_calls_used"] < 400
    client = mb.client_for(tracking_server)
    run = client.get_run(job.run_id)
    assert run.info.status == "KILLED" and run.data.tags["studio.stop_reason"] == "cancelled"
    saved = RunStore(ray_settings).read_json(job.run_id, "optimized_program.json")  # GEPA's best so far
    assert saved["instruction"]
    assert tags_of(tracking_server, job_id)[mb.STATE] == "cancelled"


def test_killed_worker_reads_interrupted_and_resumes_on_ray(ray_settings, tracking_server, ref, stub):
    stub.responder = gepa_responder
    stub.latency_s = 0.08  # slow enough that the search outlasts its first uploaded checkpoint (every 5 s) by far:
    budget = 200  # at 20 ms / 150 calls a fast run could end before the kill, and then read succeeded
    manager = JobManager(ray_settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=budget, use_merge=False))

    second = {}  # when the search was first seen past its second iteration

    def saved(job, progress):
        if progress.get("iteration", 0) < 2:
            return False
        second.setdefault("at", time.time())
        tags = tags_of(tracking_server, job_id)
        # a checkpoint written after that (every 5 s): it holds the progress the resume must not redo; an earlier one
        # (a loaded machine) would make the resume nearly a fresh run
        if float(tags.get(mb.CHECKPOINT) or 0) <= second["at"]:
            return False
        client = mb.client_for(tracking_server)
        return any(a.path.endswith("gepa_state.bin")
                   for a in client.list_artifacts(mb.find_run(client, job_id), "job/gepa"))

    wait_for(manager, job_id, saved)
    os.kill(int(tags_of(tracking_server, job_id)[mb.PID]), signal.SIGKILL)
    deadline = time.time() + 30
    while (job := manager.get(job_id)).state == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert job.state == "interrupted", (job.state, job.error)
    run_id, before = job.run_id, manager.progress(job_id)["metric_calls_used"]
    stub.reset()
    manager.resume(job_id)
    job = manager.wait(job_id, timeout=120)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    assert job.run_id == run_id and job.attempts == 2
    final = manager.progress(job_id)
    assert final["attempts"] == 2 and final["resumed_from_metric_calls"] == before > 0
    student_calls = sum(1 for r in stub.chat_requests() if r["body"]["model"] == "stub-small")
    assert student_calls < budget + 2 * 5 * 4  # a fresh run: the whole budget plus the two test evaluations
    assert final["metric_calls_used"] >= budget - 10


def test_your_own_program_travels_with_its_ray_job(ray_settings, tracking_server, tmp_path):
    """The program's file (and its metric's) go in the job's mailbox: the worker runs them though this machine's
    copy is gone by the time it starts, and checks they are the files the job was planned with."""
    import shutil

    from tests.core.test_program_runs import EXAMPLE, in_process, pipeline_args
    from tests.stub_programs import program_stub

    program = tmp_path / "mine" / "pipeline.py"
    program.parent.mkdir()
    shutil.copy(EXAMPLE, program)
    with program_stub() as stub:
        ref, sample, _ = in_process("optimize", [*pipeline_args(program), "--student", "x", "--reflection", "y"], stub)
        config = http_config(ref, stub, max_metric_calls=60)
        manager = JobManager(ray_settings)
        job_id = manager.submit_optimization(type(config)(**{**vars(config), "sample": sample}))
        shutil.rmtree(program.parent)  # gone here: only the mailbox's copy is left
        job = manager.wait(job_id, timeout=180)
        assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
        run = mb.client_for(tracking_server).get_run(job.run_id)
        assert run.data.tags["studio.module"] == "program" and run.data.tags["studio.predictors"] == \
            "extract.predict, classify"
        assert any("[[ ## finding ## ]]" in str(r["body"]) for r in stub.chat_requests())
