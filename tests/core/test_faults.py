"""Faults a real provider has, over real HTTP to the stub server: each ends with the right outcome and kind, the
circuit breaker stops a run whose provider is gone (fast, keeping its records), and a killed baseline is
completed with exactly the calls it was missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.analytics import stats
from core.evaluation.baseline import outcomes_table, run_baselines
from core.evaluation.evaluate import EvalOptions, evaluate, read_records
from core.jobs import JobManager
from core.jobs.worker import execute
from core.lm.breaker import FAILURE_KINDS, BreakerTripped
from core.lm.models import openai_compatible
from core.program.program import make_program, to_examples
from core.tasks import SampleSpec, TaskRef, table_task
from core.tracking.store import RunStore
from tests.ports import wait_for
from tests.scenario import make_table, write_csv
from tests.stub_server import Faults, StubError, StubLLMServer, keyword_classifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scenario():
    df = make_table(4)  # 20 examples, 4 per label
    task = table_task(df, text_column="description", label_column="target", name="scenario")
    return task, to_examples(df, task)


@pytest.fixture
def no_breaker(monkeypatch):
    """Faults at a 100% rate would trip the breaker; these tests look at the outcome of each example."""
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_CONSECUTIVE", "1000")
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_RATE", "1.0")
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_MIN_CALLS", "1000")


def spec_for(stub, **kw):
    return openai_compatible("stub", "stub-small", stub.base_url, **kw)


def run_cli(*args, timeout=240, **popen):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **popen)


@pytest.mark.parametrize("fault, kind, message", [
    ("server_error", "server_error", "server had an error"),
    ("empty", "server_error", "0 bytes"),
    ("malformed", "server_error", "not JSON"),
    ("off_label", "parse", "could not parse"),
    ("truncated", "parse", "cut off at max_tokens"),
])
def test_each_fault_ends_failed_with_its_kind(stub, scenario, no_breaker, fault, kind, message):
    task, examples = scenario
    stub.faults = Faults(**{fault: 1.0})
    res = evaluate(make_program(task), spec_for(stub, num_retries=0), examples[:4], task,
                   EvalOptions(threads=2, cache=False))
    recs = res.records
    assert (recs["outcome"] == "failed").all() and (recs["error_kind"] == kind).all()
    assert recs["error"].str.contains(message).all(), recs["error"].tolist()
    m = res.metrics
    assert (m["n"], m["failed"], m[f"failed_{kind}"], m["answered"], m["accuracy"]) == (4, 4, 4, 0, 0.0)
    assert m["failure_rate"] == 1.0 and m["accuracy_answered"] != m["accuracy_answered"]  # NaN: nothing answered
    assert sum(m[f"failed_{k}"] for k in FAILURE_KINDS) == 4
    if kind == "parse":  # the model answered (ChatAdapter, then the JSON fallback): tokens are counted
        assert (recs["calls"] == 2).all() and m["input_tokens"] > 0 and recs["raw_output"].notna().all()


def test_a_share_of_server_errors_fails_only_those_examples(stub, scenario, no_breaker):
    task, examples = scenario
    stub.faults = Faults(server_error=0.4, seed=3)
    res = evaluate(make_program(task), spec_for(stub, num_retries=0), examples, task,
                   EvalOptions(threads=4, cache=False))
    served_ok = len(stub.chat_requests()) - res.metrics["failed"]
    assert 0 < res.metrics["failed"] < 20 and res.metrics["failed_server_error"] == res.metrics["failed"]
    assert res.metrics["correct"] == served_ok == res.metrics["answered"]  # every answer the stub gave was right
    assert res.metrics["accuracy"] == pytest.approx(served_ok / 20)


def test_rate_limits_are_retried_after_retry_after(stub, scenario):
    task, examples = scenario
    stub.faults = Faults(rate_limit=0.3, retry_after_s=0.3, seed=1)
    # One thread: the seeded draws reach the examples in a fixed order, so the run is repeatable.
    res = evaluate(make_program(task), spec_for(stub, num_retries=4), examples, task,
                   EvalOptions(threads=1, cache=False))
    recs = res.records
    assert (recs["outcome"] == "correct").all() and res.metrics["failed"] == 0
    retried = recs[recs["attempts"] > 1]
    assert len(retried) > 0
    assert int(recs["attempts"].sum()) == len(stub.chat_requests())  # one call per attempt, none lost
    assert (retried["latency_s"] >= 0.3 * (retried["attempts"] - 1)).all()  # each retry waited the Retry-After


def test_retries_that_run_out_are_counted_as_that_kind(stub, scenario, no_breaker):
    task, examples = scenario
    stub.faults = Faults(rate_limit=1.0, retry_after_s=0.05)
    res = evaluate(make_program(task), spec_for(stub, num_retries=2), examples[:3], task,
                   EvalOptions(threads=3, cache=False))
    assert (res.records["attempts"] == 3).all() and len(stub.chat_requests()) == 9
    assert res.metrics["failed_rate_limit"] == 3 and (res.records["error"].str.contains("Rate limit")).all()


def test_a_provider_that_dies_stops_the_run_fast_and_keeps_its_records(stub, scenario, tmp_path):
    task, examples = scenario
    examples = examples * 5  # 100 examples
    stub.faults = Faults(die_after=5)
    path = tmp_path / "records.jsonl"
    start = time.perf_counter()
    with pytest.raises(BreakerTripped) as err:
        evaluate(make_program(task), spec_for(stub), examples, task,
                 EvalOptions(threads=4, cache=False, records_path=path))
    took = time.perf_counter() - start
    assert stub.dead and took < 10, took  # retries back off 1 s, 2 s: far from 100 x 3 attempts
    assert err.value.kind == "unreachable" and "Connection refused" in str(err.value) and "stub" in str(err.value)
    kept = read_records(path)
    assert (kept["outcome"] == "correct").sum() == 5  # every answer the server gave before dying
    assert len(kept) < 30 and set(kept.loc[kept["outcome"] == "failed", "error_kind"]) <= {"unreachable"}


def test_a_hanging_provider_stops_the_run_without_waiting_for_every_timeout(scenario):
    task, examples = scenario
    # Each call hangs past the 1 s timeout; 8 threads x 3 attempts each would take 20/8 x 5 s without a breaker.
    with StubLLMServer(faults=Faults(timeout=1.0, hang_s=20)) as stub:
        start = time.perf_counter()
        with pytest.raises(BreakerTripped) as err:
            evaluate(make_program(task), spec_for(stub, timeout_s=1.0), examples * 3, task,
                     EvalOptions(threads=8, cache=False))
        took = time.perf_counter() - start
    assert err.value.kind == "timeout" and "timed out" in str(err.value)
    assert took < 8, took  # first attempts time out at 1 s, their retries at 3 s: stopped then (45 s without)


def test_a_stopped_baseline_is_a_failed_degraded_run_with_its_partial_records(stub, store, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "s.csv", 12)), name="scenario")
    stub.faults = Faults(die_after=3)
    other = StubLLMServer().start()
    try:
        specs = [spec_for(stub), openai_compatible("healthy", "stub-large", other.base_url)]
        outcomes = run_baselines(store, ref, SampleSpec(2, 0, 8), specs, threads=2, cache=False)
    finally:
        other.stop()
    dead, healthy = outcomes
    assert dead.stopped_by == "breaker" and "stopped after" in dead.error and dead.run_id
    assert healthy.error is None and healthy.result.metrics["accuracy"] == 1.0  # the other model still ran
    run = store.get_run(dead.run_id)
    tags = run.data.tags
    assert run.info.status == "FAILED" and tags["studio.stopped_by"] == "breaker" and tags["studio.degraded"] == "true"
    assert "Connection refused" in tags["studio.error"] and tags["studio.degraded_reason"].startswith("The circuit")
    m = run.data.metrics
    assert "accuracy" not in m and m["complete"] == 0 and m["correct"] == 3 and m["failed"] == m["failed_unreachable"]
    records = store.read_csv(dead.run_id, "records.csv")
    assert len(records) == m["n"] and (records["outcome"] == "correct").sum() == 3
    table = outcomes_table(outcomes)
    assert list(table["degraded"]) == [True, False] and table.loc[0, "failed_by_kind"] == {"unreachable": m["failed"]}
    runs = store.list_runs().set_index("run_id")
    assert bool(runs.loc[dead.run_id, "degraded"]) and bool(runs.loc[dead.run_id, "partial"])
    assert not runs.loc[healthy.run_id, "degraded"] and runs.loc[healthy.run_id, "failed"] == 0


def test_a_cot_baseline_whose_every_answer_fails_to_parse_is_degraded(stub, store, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "s.csv", 12)), name="scenario")
    stub.responder = lambda model, messages, body: "I think this sentence is about science."
    outcomes = run_baselines(store, ref, SampleSpec(2, 0, 3), [spec_for(stub)], module="cot", cache=False)
    run = store.get_run(outcomes[0].run_id)
    assert run.info.status == "FINISHED" and outcomes[0].error is None  # it ran to the end...
    m, tags = run.data.metrics, run.data.tags
    assert m["failed_parse"] == m["n"] == 15 and m["failure_rate"] == 1.0 and m["accuracy"] == 0.0
    assert tags["studio.degraded"] == "true" and "15 of 15 examples failed (parse 15)" in tags["studio.degraded_reason"]
    assert outcomes_table(outcomes).loc[0, "degraded"]  # ...but it is not a plain success


@pytest.mark.slow
def test_the_cli_exits_non_zero_with_the_breakers_message(stub, settings, tmp_path):
    csv = write_csv(tmp_path / "s.csv", 12)
    stub.faults = Faults(die_after=4)
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{stub.base_url}",
                  "--test-per-label", "8", "--threads", "2", "--no-cache", "-q")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "stopped after" in out.stderr and "Connection refused" in out.stderr
    run_id = RunStore(settings).list_runs()["run_id"].iloc[0]
    assert f"--resume {run_id}" in out.stderr and "STOPPED" in out.stdout


@pytest.mark.slow
def test_a_run_the_breaker_stopped_resumes_once_the_provider_is_back(stub, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_CONSECUTIVE", "2")  # read by the CLI process: 2 examples' worth of calls
    csv = write_csv(tmp_path / "s.csv", 12)
    served = []

    def down_after_6(model, messages, body):
        served.append(1)
        return keyword_classifier(model, messages, body) if len(served) <= 6 else StubError(503, "upstream is down")

    stub.responder = down_after_6
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{stub.base_url}",
                  "--test-per-label", "8", "--threads", "2", "--no-cache", "-q")
    assert out.returncode == 1 and "upstream is down" in out.stderr and "Traceback" not in out.stderr, out.stderr
    store = RunStore(settings)
    run_id = store.list_runs()["run_id"].iloc[0]
    kept = read_records(settings.data_dir / "runs" / run_id / "records.jsonl")
    assert (kept["outcome"] == "correct").sum() == 6 and set(kept["error_kind"].dropna()) == {"server_error"}
    stub.responder, served[:] = keyword_classifier, []
    stub.reset()
    out = run_cli("baseline", "--resume", run_id, "-q")
    assert out.returncode == 0, out.stderr
    assert len(stub.chat_requests()) == 40 - 6  # the failed examples are tried again, the answered ones are not
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and not {"studio.degraded", "studio.stopped_by"} & set(run.data.tags)
    assert run.data.metrics["accuracy"] == 1.0 and run.data.metrics["n"] == 40 and run.data.metrics["failed"] == 0


@pytest.mark.slow
def test_a_degraded_baseline_exits_3_and_says_why(stub, settings, tmp_path, monkeypatch):
    csv = write_csv(tmp_path / "s.csv", 12)
    stub.faults = Faults(off_label=0.6, seed=2)  # DSPy retries an unparsed answer once: ~36 % fail twice
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{stub.base_url}",
                  "--test-per-label", "4", "--no-cache", "-q", "--threads", "1")
    runs = RunStore(settings).list_runs()
    failed = int(runs["failed"].iloc[0])
    assert out.returncode == 3 and failed > 1 and bool(runs["degraded"].iloc[0]), out.stderr
    assert f"DEGRADED stub-small: {failed} of 20 examples failed (parse {failed})" in out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("stub-small"))
    low, high = stats.wilson_interval(20 - failed, 20)
    assert f"{(20 - failed) / 20:.1%} [{low:.1%}, {high:.1%}]" in row and f"{failed} ({failed / 20:.1%}: parse" in row




def record_count(folder: Path) -> int:
    files = list(folder.glob("runs/*/records.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


@pytest.mark.slow
def test_kill_9_of_a_cli_baseline_then_resume_sends_exactly_the_missing_calls(settings, tmp_path):
    csv = write_csv(tmp_path / "s.csv", 12)
    with StubLLMServer(latency_s=0.15) as stub:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "core", "baseline", "--task", str(csv), "--models",
                                 f"openai/stub-small@{stub.base_url}", "--test-per-label", "6", "--threads", "2",
                                 "--no-cache", "-q"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_for(lambda: record_count(settings.data_dir) >= 8, 120)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = RunStore(settings)
        row = store.list_runs().iloc[0]
        assert row["status"] == "INTERRUPTED" and row["partial"]  # MLflow still says RUNNING: the process is gone
        run_id = row["run_id"]
        kept = read_records(settings.data_dir / "runs" / run_id / "records.jsonl")
        assert 8 <= len(kept) < 30
        stub.reset()
        out = run_cli("baseline", "--resume", run_id, "-q")
        assert out.returncode == 0, out.stderr
        sent = [json.dumps(r["body"]["messages"]) for r in stub.chat_requests()]
    assert len(sent) == 30 - len(kept)  # caching is off: only the examples without a record were sent
    assert not any(text in s for text in kept["text"] for s in sent)
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["n"] == 30 and run.data.metrics["complete"] == 1
    records = store.read_csv(run_id, "records.csv")
    assert sorted(records["idx"]) == list(range(30)) and (records["outcome"] == "correct").all()
    assert store.list_runs().iloc[0]["status"] == "FINISHED"


@pytest.mark.slow
def test_a_killed_baseline_job_reads_interrupted_and_its_resume_completes_it(settings, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "s.csv", 12)), name="scenario")
    with StubLLMServer(latency_s=0.15) as stub:
        manager = JobManager(settings)
        job_id = manager.submit_baselines(ref, SampleSpec(2, 0, 6), [spec_for(stub)], threads=2, cache=False)
        wait_for(lambda: record_count(settings.data_dir) >= 6, 120)
        manager.kill(job_id)
        job = wait_for(lambda: (j := manager.get(job_id)).state == "interrupted" and j, 30)
        store = RunStore(settings)
        run_id = manager.progress(job_id)["runs"]["stub"]["run_id"]
        run = store.get_run(run_id)
        assert run.info.status == "KILLED" and run.data.tags["studio.state"] == "interrupted"  # in MLflow too
        assert store.list_runs().set_index("run_id").loc[run_id, "status"] == "INTERRUPTED"
        kept = len(read_records(settings.data_dir / "runs" / run_id / "records.jsonl"))
        assert job.resumable
        stub.reset()
        manager.resume(job_id, start=False)
        job = execute(manager, job_id)
        assert job.state == "succeeded", job.error
        assert len(stub.chat_requests()) == 30 - kept
    run = store.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["n"] == 30 and "studio.state" not in run.data.tags
    assert len(store.list_runs(kind="baseline")) == 1  # the same run went on: no second one
