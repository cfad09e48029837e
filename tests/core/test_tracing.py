"""MLflow traces of every LM call and MLflow datasets on every run: a baseline over HTTP against the stub server,
a small GEPA run with fake LMs, tracing off, a key the provider echoes, and a tracing error that must not matter."""

import json
import logging

import pytest

from core.config.errors import ConfigError
from core.evaluation.baseline import load_run_detail, run_baselines
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import OptimizeConfig, run_optimization
from core.tasks import SampleSpec, TaskRef
from core.tracking import tracing
from core.tracking.store import RunStore
from tests.fake_lm import fake_lm
from tests.scenario import write_csv
from tests.stub_server import Faults, chat_answer, field_value, hinted_label, improved_instruction

SECRET = "sk-trace-planted-9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def traces_on(monkeypatch):
    """Tracing on here whatever the suite's default."""
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "on")


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def traces_of(store, run_id):
    exp = store.get_run(run_id).info.experiment_id
    return list(store.client.search_traces(locations=[exp], run_id=run_id, max_results=1000))


def contexts(store, run_id):
    inputs = store.get_run(run_id).inputs.dataset_inputs
    return {t.value: json.loads(i.dataset.profile)["num_rows"] for i in inputs for t in i.tags
            if t.key == "mlflow.data.context"}


def test_a_baseline_leaves_one_trace_per_lm_call_and_its_test_set(stub, store, ref):
    spec = openai_compatible("small", "stub-small", stub.base_url, input_price_per_m=1.0, output_price_per_m=2.0)
    [outcome] = run_baselines(store, ref, SampleSpec(2, 0, 2, seed=4), [spec], threads=3)
    run_id, metrics = outcome.run_id, outcome.result.metrics
    records = load_run_detail(store, run_id)["records"]
    assert tracing.trace_counts(store, run_id) == {"evaluation": int(metrics["lm_calls"])} and metrics["lm_calls"] == 10
    traces = traces_of(store, run_id)
    assert {t.info.trace_metadata["mlflow.sourceRun"] for t in traces} == {run_id}  # MLflow's run page reads this
    assert {t.info.tags["studio.run_id"] for t in traces} == {run_id}
    assert {t.info.tags["studio.model"] for t in traces} == {"small"}
    by_example = {int(t.info.tags["studio.example"]): t for t in traces}
    assert sorted(by_example) == sorted(records["idx"])  # each example's one call, found by its text
    for rec in records.itertuples():
        span = by_example[rec.idx].data.spans[0]
        sent = span.inputs["messages"][-1]["content"]
        assert rec.text in sent and rec.predicted in json.dumps(span.outputs)
        usage = span.attributes["mlflow.chat.tokenUsage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (rec.input_tokens, rec.output_tokens)
        assert span.attributes["mlflow.llm.cost"]["total_cost"] == pytest.approx(rec.cost_usd)
        assert span.attributes["mlflow.llm.model"] == "openai/stub-small" and span.attributes["studio.latency_s"] > 0
    assert contexts(store, run_id) == {"test": 10}


def test_a_judged_baseline_traces_the_judges_calls_apart(store):
    """A task scored by a rubric judge: the student's calls are role "evaluation", the judge's role "judge", each
    count equal to the run's own (lm_calls, judge_calls)."""
    from tests.stub_tasks import task_stub

    with task_stub() as server:
        student, judge = (openai_compatible(n, m, server.base_url) for n, m in (("s", "stub-small"),
                                                                                 ("j", "stub-large")))
        [outcome] = run_baselines(store, TaskRef(kind="rewrite"), SampleSpec(), [student], threads=2, judge=judge)
    metrics = outcome.result.metrics
    counts = tracing.trace_counts(store, outcome.run_id)
    assert counts == {"evaluation": int(metrics["lm_calls"]), "judge": int(metrics["judge_calls"])}
    assert metrics["judge_calls"] == metrics["n"] > 0
    models = {t.info.tags["studio.role"]: t.info.tags["studio.model"] for t in traces_of(store, outcome.run_id)}
    assert models == {"evaluation": "s", "judge": "j"}


def test_tracing_off_leaves_no_trace_and_still_logs_the_test_set(stub, store, ref, monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "off")
    spec = openai_compatible("small", "stub-small", stub.base_url)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 1), [spec], threads=2)
    assert outcome.result.metrics["lm_calls"] == 5
    assert tracing.trace_counts(store, outcome.run_id) == {} and traces_of(store, outcome.run_id) == []
    assert contexts(store, outcome.run_id) == {"test": 5}


def test_a_key_the_provider_echoes_never_reaches_a_trace(stub, store, ref, monkeypatch, settings):
    monkeypatch.setenv("STUB_API_KEY", SECRET)
    stub.faults = Faults(echo_key_401=True)
    spec = ModelSpec("keyed", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_API_KEY",
                     num_retries=0, input_price_per_m=1.0, output_price_per_m=1.0)
    [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 1), [spec], threads=1, cache=False)
    assert outcome.error and any(SECRET in r["headers"].get("Authorization", "") for r in stub.chat_requests())
    traces = traces_of(store, outcome.run_id)
    assert traces and all(t.info.state == "ERROR" for t in traces)
    errors = [t.data.spans[0].attributes["studio.error"] for t in traces]
    assert all("Incorrect API key provided" in e and "***" in e for e in errors)  # the echo is there, scrubbed
    dumped = json.dumps([t.to_dict() for t in traces], default=str)
    assert SECRET not in dumped
    for path in settings.data_dir.rglob("*"):  # the store's database and every artifact, trace data included
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_tracing_error_is_logged_once_and_never_fails_a_call(stub, store, ref, monkeypatch, caplog):
    from mlflow.tracing.utils import truncation

    def broken(*args, **kwargs):
        raise RuntimeError("the trace store is gone")

    monkeypatch.setattr(truncation, "_get_truncated_preview", broken)  # what the trace writer asks MLflow for
    spec = openai_compatible("small", "stub-small", stub.base_url)
    with caplog.at_level(logging.WARNING, logger="core.tracking.trace_writer"):
        [outcome] = run_baselines(store, ref, SampleSpec(1, 0, 1), [spec], threads=2)
    assert outcome.error is None and outcome.result.metrics["accuracy"] == 1.0
    assert outcome.result.metrics["lm_calls"] == 5  # five calls failed to trace: one warning
    # once for this run (another test's traces still being written in this process may log their own)
    assert len([r for r in caplog.records if f"MLflow traces of run {outcome.run_id}" in r.getMessage()]) == 1
    assert store.get_run(outcome.run_id).data.metrics["traces_dropped"] == 5  # and the run says so


def test_example_index_and_setting():
    index = tracing.ExampleIndex({"train": ["alpha", "beta gamma", "alpha"], "val": ["delta"]})
    user = [{"role": "user", "content": "[[ ## text ## ]]\nbeta gamma\n\nRespond with the fields"}]
    assert index.find(user) == "1" and index.find(user, "val") == "1"
    assert index.find([{"role": "user", "content": "[[ ## text ## ]]\ndelta\n\n[[ ## x ## ]]"}]) == "0"
    assert index.find([{"role": "user", "content": "[[ ## text ## ]]\nalpha\n\nRespond"}]) == ""  # twice: unknown
    assert index.find([{"role": "user", "content": "nothing known"}]) == ""
    assert tracing.ExampleIndex({"t": ["a\n\nb"]}).find("[[ ## text ## ]]\na\n\nb\n\nRespond") == "0"


def test_a_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "sometimes")
    with pytest.raises(ConfigError) as err:
        tracing.tracing_enabled()
    assert "GEPA_STUDIO_TRACES" in err.value.message and "off" in err.value.hint
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "OFF")
    assert tracing.tracing_enabled() is False


def student_reply(system, user):
    return chat_answer("target", hinted_label(system, field_value(user, "description")))


def teacher_reply(system, user):
    if "rationale" in system:  # the LLM judge
        return chat_answer("rationale", "The sentence names a result; the instruction should say so.")
    return json.dumps({"new_instruction": improved_instruction(system + "\n" + user)})


def test_a_gepa_run_traces_each_role_as_its_search_record_counts_them(settings, ref):
    store = RunStore(settings)
    student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1")
    lms = {"pupil": fake_lm(student_reply, "fake/pupil"), "teacher": fake_lm(teacher_reply, "fake/teacher")}
    config = OptimizeConfig(task_ref=ref, sample=SampleSpec(1, 1, 1, seed=3), student=student, reflection=teacher,
                            auto=None, max_metric_calls=20, threads=2, reflection_minibatch_size=3, feedback="judge")
    res = run_optimization(config, store, log_dir=settings.jobs_dir / "g" / "gepa", lm_factory=lambda s: lms[s.name])
    assert res.status == "succeeded", res.error
    counts = tracing.trace_counts(store, res.run_id)
    roles = store.read_json(res.run_id, "search.json")["roles"]
    assert {r: counts.get(r, 0) for r in roles} == {r: s["calls"] for r, s in roles.items()}
    assert counts["student_train"] and counts["student_val"] and counts["reflection"] and counts["judge"]
    evaluations = [tracing.trace_counts(store, r)["evaluation"]
                   for r in (res.original_eval_run_id, res.optimized_eval_run_id)]
    p = res.progress  # the guards count every call that reached a model; the test evaluations used this student
    assert p["student_calls"] == counts["student_train"] + counts["student_val"] + sum(evaluations)
    assert p["reflection_calls"] == counts["reflection"] + counts["judge"]
    traces = traces_of(store, res.run_id)
    n_train, n_val = 5, 5
    for t in traces:
        role, example = t.info.tags["studio.role"], t.info.tags["studio.example"]
        if role == "student_train":
            assert 0 <= int(example) < n_train
        elif role == "student_val":
            assert 0 <= int(example) < n_val
        elif role == "reflection":
            assert example == ""
    assert {t.info.tags["studio.model"] for t in traces if t.info.tags["studio.role"] == "judge"} == {"teacher"}
    assert contexts(store, res.run_id) == {"train": n_train, "validation": n_val, "test": 5}
    assert contexts(store, res.optimized_eval_run_id) == {"test": 5}
