"""GEPA under faults: a dead reflection model or a student that dies mid-job stops the run within seconds
(circuit breaker), keeps the best program, and ends FAILED with the provider's error; failed reflection
proposals are counted and a run they weaken is degraded; a resume closes the orphan child runs of a kill.

Over HTTP against the stub server (its ``Faults``), in this process, in a worker process and through the CLI;
the proposal paths with fake LMs (a reflection model whose answers cannot be parsed)."""

import json
import os
import signal
import threading
import time

import pytest

from core.jobs import JobManager
from core.optimize import run_optimization
from core.optimize.guard import failure_kind
from core.tasks import TaskRef
from core.tracking.store import RunStore
from tests.core.test_cli import run_cli
from tests.core.test_optimize import InlineBackend, config, fake_factory, http_config
from tests.scenario import write_csv
from tests.stub_server import Faults, gepa_responder, improved_instruction

ATTEMPTS = 3  # HTTP requests per failed LM call: the call and ModelSpec's default 2 retries


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def reflection_requests(stub):
    return sum(1 for r in stub.chat_requests() if r["body"]["model"] == "stub-large")


def assert_stopped_by_breaker(store, run_id, who):
    run = store.get_run(run_id)
    tags, m = run.data.tags, run.data.metrics
    assert run.info.status == "FAILED"
    assert tags["studio.stopped_by"] == "breaker" and tags["studio.degraded"] == "true"
    assert who in tags["studio.error"] and "circuit breaker" in tags["studio.degraded_reason"].lower()
    # The best program so far and everything logged are kept.
    assert {"optimized_program.json", "progress.json", "config.json"} <= set(store.list_artifacts(run_id))
    assert store.read_json(run_id, "optimized_program.json")["instruction"]
    return m


@pytest.mark.slow
def test_dead_reflection_model_stops_the_run_within_seconds(settings, ref, stub):
    """Every reflection call gets a 500: the reflection breaker trips on its 5th failed call and GEPA stops."""
    stub.responder = gepa_responder
    stub.faults = Faults(models=("stub-large",), server_error=1.0)
    store = RunStore(settings)
    events = []
    start = time.time()
    res = run_optimization(http_config(ref, stub, max_metric_calls=120), store,
                           log_dir=settings.jobs_dir / "r" / "gepa", progress=lambda p: events.append((time.time(), p)))
    elapsed = time.time() - start
    assert res.status == "failed"
    assert res.error.startswith("reflection model stub-large: stopped after 5 provider failures")
    assert "server_error" in res.error and "The server had an error" in res.error
    p = res.progress
    assert p["failed_reflection_calls"] == 5 and p["failed_student_calls"] == 0
    assert p["proposals"] == p["failed_proposals"] >= 3 and p["stopped_by"] == "breaker" and p["phase"] == "failed"
    assert p["metric_calls_used"] < 60  # before: the whole budget (121 metric calls), 227 s, then "succeeded"
    # Once tripped, calls fail fast: no request beyond the 5 failed calls and their retries reaches the server.
    assert reflection_requests(stub) == 5 * ATTEMPTS
    # Stopped within seconds of the trip; the whole run is bounded by the 5 failed calls' retry backoff.
    tripped = next(t for t, e in events if e.get("failed_reflection_calls", 0) >= 5)
    print(f"reflection breaker tripped {tripped - start:.1f} s after the start; run ended "
          f"{events[-1][0] - tripped:.1f} s after the trip; {p['failed_reflection_calls']} failed calls, "
          f"{p['failed_proposals']} failed proposals")
    assert events[-1][0] - tripped < 10
    assert elapsed < 60, elapsed
    m = assert_stopped_by_breaker(store, res.run_id, "reflection model stub-large")
    assert m["failed_reflection_calls"] == 5 and m["failed_proposals"] == m["proposals"] >= 3
    assert m["failed_student_calls"] == 0 and m["reflection_cost_usd"] == 0
    assert store.list_runs(kind="evaluation").empty  # no test evaluation of an unoptimized "optimized" program


@pytest.mark.slow
def test_student_that_dies_mid_job_stops_gepa_fast_and_keeps_the_best_program(settings, ref, stub):
    stub.responder = gepa_responder
    stub.faults = Faults(models=("stub-small",), die_after=40)  # after GEPA's first improvements
    died = {}

    def watch():
        while not stub.dead and time.time() - start < 120:
            time.sleep(0.01)
        died["at"] = time.time()

    start = time.time()
    threading.Thread(target=watch, daemon=True).start()
    store = RunStore(settings)
    stopped = {}

    def sink(p):
        if p.get("phase") in ("stopped", "failed") and "at" not in stopped:
            stopped["at"] = time.time()

    res = run_optimization(http_config(ref, stub, max_metric_calls=200), store,
                           log_dir=settings.jobs_dir / "s" / "gepa", progress=sink)
    ended = time.time()
    assert stub.dead
    assert res.status == "failed" and res.error.startswith("student model stub-small: stopped after")
    assert "unreachable" in res.error and "Connection refused" in res.error and "Check the base URL" in res.error
    to_stop, to_end = stopped["at"] - died["at"], ended - died["at"]
    print(f"student died -> GEPA stopped in {to_stop:.1f} s, run ended {to_end:.1f} s after the death")
    assert to_stop < 15 and to_end < 20  # before: the rest of the budget against the dead server (170 s)
    p = res.progress
    assert p["failed_student_calls"] >= 5 and p["metric_calls_used"] < 120
    # The best program found before the death is the one saved.
    assert p["best_val_score"] > 0.5
    m = assert_stopped_by_breaker(store, res.run_id, "student model stub-small")
    assert m["best_val_score"] == pytest.approx(p["best_val_score"])
    assert m["failed_student_calls"] == p["failed_student_calls"]
    saved = store.read_json(res.run_id, "optimized_program.json")["instruction"]
    assert saved == res.best_instruction and "Label as" in saved
    assert store.list_runs(kind="evaluation").empty


@pytest.mark.slow
def test_student_that_dies_during_the_test_evaluation_fails_the_run_with_its_message(settings, ref, stub):
    """Before: tracebacks on the terminal. Now: the evaluation's breaker stops it and the run ends FAILED."""
    stub.responder = gepa_responder
    died = {}

    def sink(p):
        if p.get("phase") == "evaluating" and "calls" not in died:
            died["calls"] = stub.chat_calls
            stub.faults = Faults(models=("stub-small",), die_after=stub.chat_calls + 3)

    store = RunStore(settings)
    res = run_optimization(http_config(ref, stub, max_metric_calls=40), store, log_dir=settings.jobs_dir / "t" / "gepa",
                           progress=sink)
    assert stub.dead and died
    assert res.status == "failed" and "stub-small" in res.error and "unreachable" in res.error
    assert res.progress["phase"] == "failed" and res.progress["stopped_by"] == "breaker"
    assert_stopped_by_breaker(store, res.run_id, "stub-small")
    children = store.list_runs(kind="evaluation")
    assert list(children["status"]) == ["FAILED"] and set(children["parent_run_id"]) == {res.run_id}
    assert "studio.prompt_uri" not in store.get_run(res.run_id).data.tags  # nothing registered from a failed run


@pytest.mark.slow
def test_job_with_an_unreachable_reflection_model_fails_in_its_worker(settings, ref, stub):
    """The reflection model's server dies on its first call (the whole stub goes): the job ends failed, fast."""
    stub.responder = gepa_responder
    stub.faults = Faults(models=("stub-large",), die_after=0)
    manager = JobManager(settings)
    start = time.time()
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=150))
    job = manager.wait(job_id, timeout=180)
    assert time.time() - start < 90
    assert job.state == "failed", (job.state, job.error, manager.log_tail(job_id))
    assert "stopped after 5 provider failures in a row" in job.error and "unreachable" in job.error
    assert "Traceback" not in manager.log_tail(job_id, lines=400)
    p = manager.progress(job_id)
    assert p["phase"] == "failed" and p["stopped_by"] == "breaker" and p["metric_calls_used"] < 75
    assert p["failed_reflection_calls"] >= 1 and p["failed_proposals"] >= 1
    store = RunStore(settings)
    assert_stopped_by_breaker(store, job.run_id, "model stub-")
    assert manager.get(job_id).resumable


@pytest.mark.slow
def test_cli_optimize_exits_non_zero_with_the_breakers_message(settings, stub, tmp_path):
    stub.responder = gepa_responder
    stub.faults = Faults(models=("stub-large",), server_error=1.0)
    csv = write_csv(tmp_path / "s.csv", 12)
    url = stub.base_url
    out = run_cli("optimize", "--task", str(csv), "--student", f"openai/stub-small@{url}",
                  "--reflection", f"openai/stub-large@{url}", "--budget", "120", "--val-per-label", "2",
                  "--test-per-label", "4", "--threads", "2", "--no-cache", timeout=180)
    assert out.returncode == 1, (out.stdout, out.stderr[-3000:])
    assert "failed (reflection model stub-large: stopped after 5 provider failures in a row" in out.stdout
    assert "server_error" in out.stdout and "check its status, then resume" in out.stdout
    assert "Traceback" not in out.stderr + out.stdout


# Proposals that give no usable instruction (fake LMs: the reflection model answers what cannot be parsed) ----


def specs():
    from core.lm.models import ModelSpec

    kw = dict(provider="openai-compatible", api_base="http://127.0.0.1:9/v1")
    return ModelSpec("pupil", "openai/pupil", **kw), ModelSpec("teacher", "openai/teacher", **kw)


def test_reflection_that_never_gives_an_instruction_fails_the_job(settings, ref):
    backend = InlineBackend(fake_factory(lambda system, user: "I would rather not say."))
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    job = manager.get(manager.submit_optimization(config(ref, *specs(), max_metric_calls=300)))
    assert job.state == "failed"
    assert job.error.startswith("reflection model teacher: stopped after 5 proposals in a row gave no usable "
                                "instruction")
    p = manager.progress(job.id)
    assert p["failed_proposals"] == p["proposals"] == 5 and p["failed_reflection_calls"] == 0
    assert p["metric_calls_used"] < 100
    run = RunStore(settings).get_run(job.run_id)
    assert run.info.status == "FAILED" and run.data.tags["studio.stopped_by"] == "breaker"
    assert run.data.metrics["failed_proposals"] == 5


@pytest.mark.slow
def test_some_failed_proposals_make_a_succeeded_job_degraded(settings, ref):
    calls = {"n": 0}

    def flaky(system, user):  # the first proposal fails: its call and GEPA's retry of it answer nothing usable
        calls["n"] += 1
        if calls["n"] <= 2:
            return "no idea"
        return json.dumps({"new_instruction": improved_instruction(system + "\n" + user)})

    backend = InlineBackend(fake_factory(flaky))
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    job = manager.get(manager.submit_optimization(config(ref, *specs(), max_metric_calls=150)))
    assert job.state == "succeeded", job.error
    p = manager.progress(job.id)
    assert 0 < p["failed_proposals"] < p["proposals"] and p["degraded"] is True
    assert job.error == f"degraded: {p['degraded_reason']}"
    assert f"{p['failed_proposals']} of {p['proposals']} reflection proposals" in p["degraded_reason"]
    run = RunStore(settings).get_run(job.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["studio.degraded"] == "true"
    assert run.data.tags["studio.degraded_reason"] == p["degraded_reason"]
    assert "studio.stopped_by" not in run.data.tags
    assert run.data.metrics["failed_proposals"] == p["failed_proposals"]


@pytest.mark.slow
def test_a_clean_job_is_not_degraded(settings, ref):

    backend = InlineBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    job = manager.get(manager.submit_optimization(config(ref, *specs())))
    assert job.state == "succeeded" and job.error is None
    p = manager.progress(job.id)
    assert p["failed_proposals"] == p["failed_student_calls"] == p["failed_reflection_calls"] == 0
    assert p["proposals"] > 0
    run = RunStore(settings).get_run(job.run_id)
    assert "studio.degraded" not in run.data.tags and run.data.metrics["failed_proposals"] == 0


def test_failure_kinds_of_provider_errors():
    from dspy.utils import exceptions as E

    assert failure_kind(E.LMServerError("The server had an error (openai-chat, HTTP 500)")) == "server_error"
    import dspy

    assert failure_kind(E.AdapterParseError("ChatAdapter", dspy.Signature("a -> b"), "garbage")) == "parse"
    assert failure_kind(ConnectionRefusedError("failed to connect: Connection refused")) == "unreachable"
    assert failure_kind(E.LMRateLimitError("Rate limit reached")) == "rate_limit"
    assert failure_kind(ValueError("something else")) == "other"


# A kill during the test evaluation, then a resume ----------------------------------------------------------


@pytest.mark.slow
def test_resume_after_a_kill_during_the_test_evaluation_goes_on_with_the_orphan_child_run(settings, ref, stub):
    stub.responder = gepa_responder
    manager = JobManager(settings)
    store = RunStore(settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=40, use_merge=False))
    orphan = None
    deadline = time.time() + 120
    while time.time() < deadline and orphan is None:
        if manager.progress(job_id).get("phase") == "evaluating":
            stub.latency_s = 0.2  # slow the test evaluation down enough to kill the worker inside it
            runs = store.list_runs(kind="evaluation", job_id=job_id)
            running = runs[runs["status"] == "RUNNING"] if not runs.empty else runs
            if not running.empty:
                orphan = running["run_id"].iloc[0]
                break
        time.sleep(0.05)
    assert orphan, manager.log_tail(job_id)
    os.killpg(manager.get(job_id).pid, signal.SIGKILL)
    time.sleep(0.5)
    job = manager.get(job_id)
    assert job.state == "interrupted"
    # Finding the job interrupted closes its runs at once (the kind's on_interrupted hook), before any resume.
    closed = store.get_run(orphan)
    assert closed.info.status == "KILLED" and closed.data.tags["studio.state"] == "interrupted"
    table = store.list_runs(job_id=job_id)
    assert table.loc[table["run_id"] == job.run_id, "status"].iloc[0] == "INTERRUPTED"
    stub.latency_s = 0.0
    manager.resume(job_id)
    job = manager.wait(job_id, timeout=180)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    assert store.get_run(job.run_id).info.status == "FINISHED"
    children = store.list_runs(kind="evaluation", job_id=job_id)
    assert (children["status"] == "RUNNING").sum() == 0
    finished = children[children["status"] == "FINISHED"]
    assert sorted(finished["program"]) == ["optimized", "original"] and len(children) == 2  # none left beside
    assert set(finished["parent_run_id"]) == {job.run_id}
    assert orphan in set(finished["run_id"])  # the interrupted evaluation went on (its records kept), not a new one
