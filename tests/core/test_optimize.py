"""GEPA through the job runner: fake LMs in-process, then the stub server over HTTP in a worker process."""

import json
import os
import signal
import threading
import time

import pytest

from core.config.errors import ConfigError
from core.jobs import JobManager
from core.jobs.worker import execute
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import OptimizeConfig, estimate, run_optimization
from core.tasks import SampleSpec, TaskRef, prepare
from core.tracking.store import RunStore
from tests.fake_lm import fake_lm
from tests.scenario import write_csv
from tests.stub_server import chat_answer, field_value, gepa_responder, hinted_label, improved_instruction


class InlineBackend:
    """Runs a job in this process (fake LMs cannot cross a process boundary)."""

    def __init__(self, lm_factory):
        self.lm_factory = lm_factory
        self.manager = None

    def start(self, job_id, settings):
        execute(self.manager, job_id, lm_factory=self.lm_factory)
        return str(os.getpid())

    def alive(self, handle):
        return False


def student_reply(system, user):
    return chat_answer("target", hinted_label(system, field_value(user, "description")))


def reflection_reply(system, user):
    return json.dumps({"new_instruction": improved_instruction(system + "\n" + user)})


def fake_factory(reflect=reflection_reply):
    """Fake LMs by spec name: "teacher" answers with ``reflect``, every other model is the hinted student."""
    lms = {}

    def make(spec):
        if spec.name not in lms:
            lms[spec.name] = fake_lm(reflect if spec.name == "teacher" else student_reply, f"fake/{spec.name}")
        return lms[spec.name]

    return make


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def config(ref, student, reflection, **kw):
    base = dict(task_ref=ref, sample=SampleSpec(3, 2, 4, seed=3), student=student, reflection=reflection,
                auto=None, max_metric_calls=120, threads=2, reflection_minibatch_size=3)
    base.update(kw)
    return OptimizeConfig(**base)


PRICED = dict(input_price_per_m=1.0, output_price_per_m=4.0)


def test_full_gepa_job_with_fake_lms(settings, ref):
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    backend = InlineBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    events = []
    orig_write = manager.write_progress
    manager.write_progress = lambda jid, p: (events.append(p), orig_write(jid, p))
    job_id = manager.submit_optimization(config(ref, student, teacher))
    job = manager.get(job_id)
    assert job.state == "succeeded", job.error
    # Progress came in order: metric calls never go down, the best score never drops.
    calls = [e["metric_calls_used"] for e in events if "metric_calls_used" in e]
    assert calls == sorted(calls) and calls[-1] >= 100
    bests = [e["best_val_score"] for e in events if e.get("best_val_score") is not None]
    assert bests == sorted(bests)
    assert [e["phase"] for e in events][-1] == "done"
    final = manager.progress(job_id)
    assert final["student_cost_usd"] > 0 and final["reflection_cost_usd"] > 0
    assert final["total_cost_usd"] == pytest.approx(final["student_cost_usd"] + final["reflection_cost_usd"])
    # MLflow: the optimization run, its artifacts, and two linked evaluation runs on the same examples.
    store = RunStore(settings)
    run = store.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    # MLflow shows each metric at its highest step: the final values are those, not an earlier point of the series.
    assert run.data.metrics["metric_calls_used"] == final["metric_calls_used"]
    history = [(m.step, m.value) for m in store.client.get_metric_history(job.run_id, "metric_calls_used")]
    assert history[0][1] > 0  # the seed's evaluation is counted (GEPA counts it before its budget hook exists)
    arts = set(store.list_artifacts(job.run_id))
    assert {"optimized_program.json", "detailed_results.json", "config.json", "instructions.json"} <= arts
    details = store.read_json(job.run_id, "detailed_results.json")
    assert len(details["candidates"]) >= 2 and "parents" in details
    m = run.data.metrics
    assert m["optimization_cost_usd"] == pytest.approx(m["student_cost_usd"] + m["reflection_cost_usd"])
    assert m["optimized_test_accuracy"] > m["original_test_accuracy"]
    children = store.list_runs(kind="evaluation", job_id=job_id)
    assert set(children["program"]) == {"original", "optimized"}
    assert set(children["parent_run_id"]) == {job.run_id}
    prints = {store.get_run(r).data.params["test_fingerprint"] for r in children["run_id"]}
    assert len(prints) == 1  # paired: identical test examples
    assert "Label as" in store.read_json(job.run_id, "instructions.json")["optimized"]
    assert run.data.tags["studio.prompt_uri"].startswith("prompts:/scenario-pupil/")
    history = store.client.get_metric_history(job.run_id, "best_val_score")
    assert len(history) >= 2


def test_cancel_keeps_best_program_so_far(settings, ref):
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    store = RunStore(settings)
    log_dir = settings.jobs_dir / "manual" / "gepa"
    seen = []
    stop = threading.Event()

    def sink(p):
        seen.append(p)
        if p.get("iteration", 0) >= 3:
            stop.set()  # the job's cancel channel says stop

    res = run_optimization(config(ref, student, teacher, max_metric_calls=400), store, log_dir=log_dir,
                           progress=sink, should_stop=stop.is_set, lm_factory=fake_factory())
    assert res.status == "cancelled" and res.stop_reason == "cancelled"
    assert seen[-1]["metric_calls_used"] < 400
    assert store.get_run(res.run_id).info.status == "KILLED"
    saved = store.read_json(res.run_id, "optimized_program.json")
    assert saved["instruction"] == res.best_instruction


def test_spending_cap_stops_the_job(settings, ref):
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1", **PRICED)
    res = run_optimization(config(ref, student, teacher, max_metric_calls=400, max_cost_usd=0.002),
                           RunStore(settings), log_dir=settings.jobs_dir / "cap" / "gepa", lm_factory=fake_factory())
    assert res.status == "cancelled" and "spending cap" in res.stop_reason
    assert 0.002 <= res.progress["total_cost_usd"] < 0.01
    assert res.progress["metric_calls_used"] < 400


@pytest.mark.parametrize("change, message", [
    (dict(max_metric_calls=0), "more than zero"),
    (dict(reflection=None), "No reflection model"),
    (dict(reflection_minibatch_size=20), "smaller than the reflection minibatch"),
    (dict(auto="light"), "exactly one budget"),
    (dict(max_cost_usd=-1.0), "spending cap"),
])
def test_bad_configs_are_rejected_before_a_process_starts(settings, ref, change, message):
    student = openai_compatible("s", "stub-small", "http://127.0.0.1:9/v1")
    started = []

    class Recorder:
        def start(self, job_id, settings):
            started.append(job_id)
            return "1"

        def alive(self, handle):
            return False

    manager = JobManager(settings, backend=Recorder())
    kw = dict(change)
    reflection = kw.pop("reflection", student)
    with pytest.raises(ConfigError, match=message):
        manager.submit_optimization(config(ref, student, reflection, **kw))
    assert started == [] and manager.list() == []


def test_unknown_label_column_is_rejected(settings, ref):
    from core.config.errors import DataError

    bad = TaskRef(kind="file", source=ref.source, label_column="section")
    student = openai_compatible("s", "stub-small", "http://127.0.0.1:9/v1")
    with pytest.raises(DataError, match="section"):
        JobManager(settings).submit_optimization(config(bad, student, student))


def test_estimate_matches_the_budget_and_prices(settings, ref):
    student = openai_compatible("s", "stub-small", "http://127.0.0.1:9/v1", **PRICED)
    teacher = openai_compatible("t", "stub-large", "http://127.0.0.1:9/v1", input_price_per_m=3.0,
                                output_price_per_m=15.0)
    task, splits = prepare(ref, SampleSpec(3, 2, 4, seed=3), settings)
    est = estimate(config(ref, student, teacher), task, splits)
    assert est.metric_calls == 120
    assert 1 <= est.reflection_calls_low <= est.reflection_calls_high
    assert 0 < est.cost_low_usd < est.cost_high_usd
    light = estimate(config(ref, student, teacher, auto="light", max_metric_calls=None), task, splits)
    assert light.metric_calls > 120  # dspy's auto budget for |val| = 10


# Over HTTP, in worker processes ---------------------------------------------------------------


def http_config(ref, stub, **kw):
    student = openai_compatible("stub-small", "stub-small", stub.base_url, **PRICED)
    teacher = openai_compatible("stub-large", "stub-large", stub.base_url, input_price_per_m=3.0,
                                output_price_per_m=15.0)
    return config(ref, student, teacher, cache=False, **kw)


@pytest.mark.slow
def test_gepa_job_over_http_in_a_worker_process(settings, ref, stub):
    stub.responder = gepa_responder
    manager = JobManager(settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=60))
    job = manager.wait(job_id, timeout=240)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    assert job.pid != os.getpid()
    m = RunStore(settings).get_run(job.run_id).data.metrics
    assert m["optimized_test_accuracy"] >= m["original_test_accuracy"]
    models = {r["body"]["model"] for r in stub.chat_requests()}
    assert models == {"stub-small", "stub-large"}


@pytest.mark.slow
def test_kill_dash_nine_then_resume_spends_less_than_fresh(settings, ref, stub):
    stub.responder = gepa_responder
    stub.latency_s = 0.02
    budget = 150
    manager = JobManager(settings)
    job_id = manager.submit_optimization(http_config(ref, stub, max_metric_calls=budget, use_merge=False))
    deadline = time.time() + 120
    while time.time() < deadline:
        p = manager.progress(job_id)
        if p.get("iteration", 0) >= 4 and (settings.jobs_dir / job_id / "gepa" / "gepa_state.bin").exists():
            break
        time.sleep(0.05)
    job = manager.get(job_id)
    os.killpg(job.pid, signal.SIGKILL)
    time.sleep(0.5)
    assert manager.get(job_id).state == "interrupted"
    before = manager.progress(job_id)["metric_calls_used"]
    stub.reset()
    manager.resume(job_id)
    job = manager.wait(job_id, timeout=240)
    assert job.state == "succeeded", (job.error, manager.log_tail(job_id))
    student_calls_after = sum(1 for r in stub.chat_requests() if r["body"]["model"] == "stub-small")
    final = manager.progress(job_id)
    assert final["attempts"] == 2 and final["resumed_from_metric_calls"] == before > 0
    # A fresh run spends the whole budget (plus the two test evaluations); the resumed one only the rest.
    n_test = 5 * 4
    fresh_student_calls = budget + 2 * n_test
    assert student_calls_after < fresh_student_calls
    assert final["metric_calls_used"] >= budget - 10


@pytest.mark.slow
def test_two_jobs_at_once_keep_their_progress_and_artifacts_apart(settings, ref, stub):
    stub.responder = gepa_responder
    stub.latency_s = 0.01
    manager = JobManager(settings)
    a = manager.submit_optimization(http_config(ref, stub, max_metric_calls=60, seed=1))
    b = manager.submit_optimization(http_config(ref, stub, max_metric_calls=90, seed=2))
    time.sleep(1.0)
    assert {manager.get(a).state, manager.get(b).state} == {"running"}  # both at once (max_jobs = 2)
    ja, jb = manager.wait(a, timeout=240), manager.wait(b, timeout=240)
    assert ja.state == jb.state == "succeeded", (ja.error, jb.error, manager.log_tail(a), manager.log_tail(b))
    store = RunStore(settings)
    for job, budget, seed in ((ja, 60, 1), (jb, 90, 2)):
        assert manager.progress(job.id)["metric_calls_budget"] == budget
        params = store.get_run(job.run_id).data.params
        assert params["budget"] == f"{budget} metric calls" and params["seed"] == str(seed)
        assert store.read_json(job.run_id, "config.json")["max_metric_calls"] == budget
        children = store.list_runs(job_id=job.id, kind="evaluation")
        assert len(children) == 2 and set(children["parent_run_id"]) == {job.run_id}
    assert ja.run_id != jb.run_id
