"""A stopped optimization is no dead end: a capped run keeps its best program and, with the ``finish`` job, gets
the same before/after test evaluations as a finished one (over HTTP against the stub server, in this process);
what cannot be finished is refused with a message and a hint."""

import pytest

from core.config.errors import ConfigError, JobError, StoreError
from core.jobs import JobManager
from core.lm.models import openai_compatible
from core.optimize import estimate_finish, finish_optimization, plan_finish
from core.program.program import make_program, program_to_dict
from core.tasks import TaskRef, prepare, split_fingerprint
from core.tracking.runs import optimization_frame
from core.tracking.store import TAG, RunStore
from tests.core.test_optimize import PRICED, InlineBackend, config, http_config
from tests.scenario import write_csv
from tests.stub_server import Faults, gepa_responder

RESULTS = ("original_test_accuracy", "optimized_test_accuracy", "original_cost_per_1k", "optimized_cost_per_1k")


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def frame_row(store, run_id):
    opts = optimization_frame(store.list_runs())
    return opts[opts["run_id"] == run_id].iloc[0]


@pytest.mark.slow
def test_a_capped_run_gets_its_test_evaluations_with_the_finish_job(settings, ref, stub):
    stub.responder = gepa_responder
    backend = InlineBackend(None)  # real HTTP to the stub, in this process
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    job = manager.get(manager.submit_optimization(http_config(ref, stub, max_metric_calls=60, max_cost_usd=0.002)))
    store = RunStore(settings)
    run = store.get_run(job.run_id)
    assert job.state == "cancelled"
    assert job.error == run.data.tags["studio.stop_reason"] == "spending cap $0.002 reached"
    assert run.info.status == "KILLED" and not set(RESULTS) & set(run.data.metrics)
    assert manager.progress(job.id)["metric_calls_used"] < 60
    row = frame_row(store, job.run_id)
    assert row["outcome"] == "capped" and not row["has_results"]

    # A provider that refuses the student fails the finish job (never "succeeded"); the run stays as it was.
    stub.faults = Faults(models=("stub-small",), echo_key_401=True)
    dead = manager.get(manager.submit_finish(job.run_id))
    assert dead.state == "failed" and "stub-small" in dead.error and "auth" in dead.error, dead.error
    assert not set(RESULTS) & set(store.get_run(job.run_id).data.metrics)

    stub.faults = None
    calls_before = len(stub.chat_requests())
    fin = manager.get(manager.submit_finish(job.run_id))
    assert fin.state == "succeeded" and fin.kind == "finish" and fin.run_id == job.run_id, fin.error
    n_test = len(manager.plan(job.id)["splits"]["test"])
    assert len(stub.chat_requests()) - calls_before == 2 * n_test  # both programs, once per test example
    run = store.get_run(job.run_id)
    m, tags = run.data.metrics, run.data.tags
    assert set(RESULTS) <= set(m) and m["optimized_test_accuracy"] > m["original_test_accuracy"]  # its best program
    assert run.info.status == "KILLED" and tags["studio.stop_reason"] == "spending cap $0.002 reached"
    assert tags["studio.prompt_uri"].startswith("prompts:/scenario-stub-small/")
    children = store.list_runs(kind="evaluation", job_id=fin.id)
    assert set(children["run_id"]) == {tags["studio.original_eval_run_id"], tags["studio.optimized_eval_run_id"]}
    assert set(children["parent_run_id"]) == {job.run_id} and set(children["status"]) == {"FINISHED"}
    prints = {store.get_run(r).data.params["test_fingerprint"] for r in children["run_id"]}
    assert prints == {run.data.params["test_fingerprint"]}  # the planned test examples, the same for both
    assert m["optimized_cost_per_1k"] == pytest.approx(
        float(children.set_index("program").loc["optimized", "cost_per_1k"]))
    progress = manager.progress(fin.id)
    assert progress["phase"] == "done" and progress["programs"]["optimized"]["done"] == n_test
    row = frame_row(store, job.run_id)
    assert row["outcome"] == "capped" and row["has_results"]

    with pytest.raises(ConfigError, match="already has its test results"):
        manager.submit_finish(job.run_id)


def _stopped_run(store, settings, ref, *, artifacts=True, status="KILLED", fingerprint=None):
    """An optimization run as a capped one leaves it (no GEPA): config, both programs, a stop reason."""
    cfg = config(ref, openai_compatible("s", "stub-small", "http://127.0.0.1:9/v1", **PRICED),
                 openai_compatible("t", "stub-large", "http://127.0.0.1:9/v1"))
    task, splits = prepare(ref, cfg.sample, settings)
    run_id = store.start_run("optimization", task.name, run_name="GEPA · s ← t", tags={f"{TAG}model": "s"},
                             params={"test_fingerprint": fingerprint or split_fingerprint(splits.test, task)})
    if artifacts:
        program = program_to_dict(make_program(task), task)
        store.log_artifacts(run_id, {"config.json": cfg.to_dict(), "original_program.json": program,
                                     "optimized_program.json": program})
    store.set_tags(run_id, {f"{TAG}stop_reason": "cancelled"})
    if status != "RUNNING":
        store.end_run(run_id, status)
    return run_id, cfg, len(splits.test)


def test_what_cannot_be_finished_is_refused_with_a_hint(settings, ref, capsys):
    from core.cli.main import main
    from core.cli.optimize import print_finish_hint

    store = RunStore(settings)
    manager = JobManager(settings, backend=InlineBackend(None))
    with pytest.raises(StoreError, match="No run 'nope'") as err:
        manager.submit_finish("nope")
    assert err.value.hint
    baseline = store.start_run("baseline", "scenario", run_name="b")
    with pytest.raises(ConfigError, match="not an optimization"):
        manager.submit_finish(baseline)
    running, _, _ = _stopped_run(store, settings, ref, status="RUNNING")
    with pytest.raises(ConfigError, match="still running"):
        manager.submit_finish(running)
    bare, _, _ = _stopped_run(store, settings, ref, artifacts=False)
    with pytest.raises(ConfigError, match="no saved best program") as err:
        manager.submit_finish(bare)
    assert "Resume" in err.value.hint
    moved, _, _ = _stopped_run(store, settings, ref, fingerprint="0123456789ab")
    with pytest.raises(ConfigError, match="no longer those optimization") as err:
        manager.submit_finish(moved)
    assert err.value.hint
    assert manager.list() == []  # nothing was queued

    run_id, _, _ = _stopped_run(store, settings, ref)
    manager.submit("finish", "Test evaluation", {"run_id": run_id}, start=False)
    with pytest.raises(JobError, match="already being evaluated"):
        manager.submit_finish(run_id)

    done, _, _ = _stopped_run(store, settings, ref)
    store.log_metrics(done, {"original_test_accuracy": 0.5, "optimized_test_accuracy": 0.75})
    assert main(["finish", done]) == 2  # the command line says why, with the hint
    err = capsys.readouterr().err
    assert "already has its test results (50.0% → 75.0%)" in err and "hint: See them on the Compare page" in err
    for run, hinted in ((run_id, True), (done, False), (bare, False)):  # `optimize` says how to finish a stopped run
        job_id = manager.submit("optimize", "GEPA", {}, start=False, run_id=run)
        manager.finish(job_id, "cancelled", error="cancelled")
        print_finish_hint(manager, job_id)
        assert (f"python -m core finish {run}" in capsys.readouterr().err) is hinted


def test_a_cancelled_finish_logs_no_results_and_the_estimate_uses_the_measured_cost(settings, ref):
    store = RunStore(settings)
    run_id, cfg, n_test = _stopped_run(store, settings, ref)
    plan = plan_finish(store, run_id)
    assert len(plan.splits.test) == n_test and plan.cost_usd > 0
    result = finish_optimization(store, plan, should_stop=lambda: True)
    assert result.status == "cancelled" and result.pair is None
    assert not set(RESULTS) & set(store.get_run(run_id).data.metrics)
    assert store.get_run(run_id).info.status == "KILLED"

    measured = {"student_calls": 50, "student_cost_usd": 0.01}
    assert estimate_finish(cfg.to_dict(), 20, measured) == pytest.approx(2 * 20 * 0.01 / 50)
    by_price = estimate_finish(cfg.to_dict(), 20)
    assert 0 < by_price < estimate_finish(cfg.to_dict(), 40)
    unpriced = {**cfg.to_dict(), "student": openai_compatible("x", "x", "http://127.0.0.1:9/v1").to_dict()}
    assert estimate_finish(unpriced, 20) in (None, 0.0)
