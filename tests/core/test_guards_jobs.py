"""Guards on job control: cancel goes through the job manager to a RUNNING job, and a resumed job spends only
what is left of its budget. Each test fails under a plausible one-line bug named in its docstring."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import pytest

from core.jobs import JobManager
from core.jobs.worker import execute
from core.lm.models import ModelSpec
from core.tasks import TaskRef
from core.tracking.store import RunStore
from tests.core.test_guards_cost import ServerLedger, usd
from tests.core.test_optimize import config, fake_factory, http_config
from tests.ports import wait_for
from tests.scenario import write_csv
from tests.stub_server import gepa_responder

# SampleSpec(3, 2, 4) in the configs below: 5 labels -> 15 train, 10 validation, 20 test examples.
N_VAL, N_TEST, MINIBATCH = 10, 20, 3
ONE_ITERATION = 2 * MINIBATCH + N_VAL  # most metric calls one GEPA iteration makes (minibatch twice, then the val set)


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


class ThreadBackend:
    """Runs each job's worker code on a thread of this process (fake LMs cannot cross a process boundary)."""

    def __init__(self, lm_factory) -> None:
        self.lm_factory = lm_factory
        self.manager: JobManager | None = None
        self.threads: dict[str, threading.Thread] = {}

    def start(self, job_id, settings):
        thread = threading.Thread(target=execute, args=(self.manager, job_id), kwargs={"lm_factory": self.lm_factory},
                                  name=f"job-{job_id}", daemon=True)
        self.threads[f"thread:{job_id}"] = thread
        thread.start()
        return f"thread:{job_id}"

    def alive(self, handle):
        thread = self.threads.get(handle)
        # Before the registry stores our handle, the worker's claim() records this process's pid.
        return thread.is_alive() if thread else handle == str(os.getpid())

    def kill(self, handle):
        raise AssertionError("a thread cannot be killed; these tests cancel")


def offline_spec(name: str) -> ModelSpec:
    """A spec whose calls the fake LMs answer (nothing listens on port 9)."""
    return ModelSpec(name, f"openai/{name}", "openai-compatible", api_base="http://127.0.0.1:9/v1")




def improved(progress: dict) -> bool:
    """A candidate better than the starting program has been found (its val score is the best so far)."""
    history = progress.get("history") or []
    return len(history) >= 2 and (progress.get("best_val_score") or 0) > (history[0].get("val_score") or 0)


def assert_cancelled_with_best_program(manager: JobManager, job_id: str, calls_at_cancel: int, budget: int) -> None:
    job = manager.get(job_id)
    assert job.state == "cancelled", (job.state, job.error, manager.log_tail(job_id))
    final = manager.progress(job_id)
    assert final["phase"] == "stopped"
    # It stopped at the next iteration boundary: at most about one iteration after the cancel, far from the budget.
    assert final["metric_calls_used"] <= calls_at_cancel + 2 * ONE_ITERATION < budget
    store = RunStore(manager.settings)
    run = store.get_run(job.run_id)
    assert run.info.status == "KILLED" and run.data.tags["studio.stop_reason"] == "cancelled"
    saved = store.read_json(job.run_id, "optimized_program.json")["instruction"]
    instructions = store.read_json(job.run_id, "instructions.json")
    assert saved == instructions["optimized"] != instructions["original"]
    assert "Label as" in saved  # the improvement found before the cancel is kept
    assert store.list_runs(kind="evaluation", job_id=job_id).empty  # no test evaluation after a cancel


@pytest.mark.slow
def test_cancel_through_the_job_manager_stops_a_running_job(settings, ref):
    """Bugs guarded: ``JobManager.cancel`` doing nothing for a running job, and the optimization ignoring the
    registry's cancel flag (``ctx.should_stop`` -> ``JobManager.cancel_requested``). The job runs on a thread
    with fake LMs and a budget it would take a long while to spend; it must end "cancelled" within seconds."""
    backend = ThreadBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    budget = 1500  # about 20 s of work with fake LMs: a job that ignores the cancel ends "succeeded" in the wait below
    job_id = manager.submit_optimization(config(ref, offline_spec("pupil"), offline_spec("teacher"),
                                                max_metric_calls=budget))
    wait_for(lambda: improved(manager.progress(job_id)), timeout=60)
    assert manager.get(job_id).state == "running"
    calls_at_cancel = manager.progress(job_id)["metric_calls_used"]
    asked = time.time()
    manager.cancel(job_id)
    job = manager.wait(job_id, timeout=90, poll=0.05)
    assert job.state == "cancelled", (job.state, job.error)
    assert time.time() - asked < 15, "the job went on long after it was cancelled"
    backend.threads[f"thread:{job_id}"].join(timeout=10)
    assert_cancelled_with_best_program(manager, job_id, calls_at_cancel, budget)


@pytest.mark.slow
def test_cancel_stops_a_worker_process_over_http(settings, ref, stub):
    """The same bugs through the real path: a worker process talking HTTP to a stub with some latency; the
    cancel flag crosses processes through the job registry. After the job ends the server hears nothing more.

    Also guards the GEPA cost meters as wired into a job: the spend reported for the student and for the
    reflection model is what the server billed each of them (its usage times that model's prices)."""
    ledger = ServerLedger(gepa_responder)
    stub.responder = ledger
    stub.latency_s = 0.02
    manager = JobManager(settings)
    budget = 2000
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=budget))
    try:
        wait_for(lambda: improved(manager.progress(job_id)), timeout=90, poll=0.05)
        assert manager.get(job_id).state == "running"
        calls_at_cancel = manager.progress(job_id)["metric_calls_used"]
        asked = time.time()
        manager.cancel(job_id)
        job = manager.wait(job_id, timeout=30, poll=0.05)
        assert job.state == "cancelled", (job.state, job.error, manager.log_tail(job_id))
        assert time.time() - asked < 20, "the job went on long after it was cancelled"
        heard = len(stub.chat_requests())
        time.sleep(0.5)
        assert len(stub.chat_requests()) == heard
        assert_cancelled_with_best_program(manager, job_id, calls_at_cancel, budget)
        final = manager.progress(job_id)  # http_config's prices: student $1 / $4, reflection $3 / $15 per 1M
        assert final["student_cost_usd"] == pytest.approx(usd(*ledger.tokens("stub-small"), 1.0, 4.0), rel=1e-9)
        assert final["reflection_cost_usd"] == pytest.approx(usd(*ledger.tokens("stub-large"), 3.0, 15.0), rel=1e-9)
    finally:
        manager.kill(job_id)  # a job that ignored the cancel must not outlive the test


def saved_metric_calls(job_dir) -> int:
    """Metric calls GEPA counted in the state it last saved (it saves at the start of every iteration)."""
    with open(job_dir / "gepa" / "gepa_state.bin", "rb") as fh:
        return int(pickle.load(fh)["total_num_evals"])


@pytest.mark.slow
def test_resume_after_kill_dash_nine_spends_only_the_rest_of_the_budget(settings, ref, stub, request):
    """Bug guarded: a resume that restarts GEPA from zero (or re-spends part of what was done).

    A GEPA job is killed with SIGKILL after spending part of its budget, then resumed. The resumed attempt's
    student calls must be the budget left, (budget - S) where S is the metric calls GEPA had saved, plus the
    two test evaluations (2 x 20), within a tolerance of |val| + one iteration (26 calls): GEPA re-scores the
    starting program on the validation set when it resumes (10 calls, not counted in its budget), and stops
    at the first iteration boundary past the budget (at most 16 calls over). A restart from zero would spend
    S more, and the kill waits until S is well above the tolerance (measured: S = 72, 128 calls against 118
    expected; a restart from zero made 190)."""
    stub.responder = gepa_responder
    stub.latency_s = 0.02
    budget = 150
    manager = JobManager(settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=budget, use_merge=False))
    request.addfinalizer(lambda: manager.kill(job_id))  # whatever happens, no worker outlives the test
    job_dir = settings.jobs_dir / job_id
    wait_for(lambda: (job_dir / "gepa" / "gepa_state.bin").exists()
             and manager.progress(job_id).get("metric_calls_used", 0) >= 70, timeout=120, poll=0.05)
    os.killpg(manager.get(job_id).pid, signal.SIGKILL)
    wait_for(lambda: manager.get(job_id).state == "interrupted", timeout=10)
    saved = saved_metric_calls(job_dir)
    tolerance = N_VAL + ONE_ITERATION
    assert saved > tolerance + 10, saved  # else a restart from zero (S calls more) could hide inside the tolerance
    stub.reset()
    manager.resume(job_id)
    job = manager.wait(job_id, timeout=240)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    student_calls = sum(1 for r in stub.chat_requests() if r["body"]["model"] == "stub-small")
    expected = (budget - saved) + 2 * N_TEST
    assert expected <= student_calls <= expected + tolerance, (student_calls, expected, saved)
    final = manager.progress(job_id)
    assert final["attempts"] == 2
    assert budget <= final["metric_calls_used"] <= budget + ONE_ITERATION
