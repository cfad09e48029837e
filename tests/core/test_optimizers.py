"""MIPROv2, few-shot and your own prompt beside GEPA: each end to end over HTTP against the stub server (as jobs of
the ``optimize`` kind, run in this process), leaving comparable runs; estimates, config checks and cancel."""

import json
import re
import threading
import time

import pytest

from core.config.errors import ConfigError
from core.jobs import JobManager
from core.jobs.worker import execute
from core.lm.models import openai_compatible
from core.optimize import OPTIMIZERS, OptimizeConfig, estimate, run_optimization
from core.tasks import SampleSpec, TaskRef, prepare
from core.tracking.store import RunStore
from tests.scenario import write_csv
from tests.stub_server import (
    KEYWORDS,
    chat_answer,
    field_value,
    hint_for,
    hinted_label,
    improved_instruction,
    keyword_label,
    last_user_text,
    system_text,
)

ALL_HINTS = "Classify the sentence. " + " ".join(hint_for(label) for label in KEYWORDS)
PRICED = dict(input_price_per_m=1.0, output_price_per_m=4.0)


def output_fields(system: str) -> list[str]:
    part = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"^\d+\. `(\w+)`", part, re.M)


def responder(model, messages, body):
    """stub-small is a student that follows the hints in its instruction and learns a label from a demo of it;
    stub-large is the teacher (labels by keyword) and MIPROv2's prompt model (proposes an instruction with hints)."""
    system, user = system_text(messages), last_user_text(messages)
    fields = output_fields(system) or ["target"]
    if fields == ["target"]:
        sentence = field_value(user, "description")
        if model == "stub-large":
            label = keyword_label(sentence)
        else:
            demos = " ".join(str(m.get("content")) for m in messages[1:-1] if m.get("role") == "assistant")
            taught = {lab for lab in KEYWORDS if f"\n{lab}\n" in demos}
            low = sentence.lower()
            label = next((lab for lab, words in KEYWORDS.items() if lab in taught and any(w in low for w in words)),
                         None) or hinted_label(system, sentence)
        values = {"target": label}
    elif "new_instruction" in fields:  # GEPA's reflection (its JSONAdapter wants JSON)
        return json.dumps({"new_instruction": improved_instruction("\n".join(str(m.get("content")) for m in messages))})
    else:
        values = {f: (ALL_HINTS if f == "proposed_instruction" else "A short note.") for f in fields}
    if body.get("response_format"):
        return json.dumps(values)
    return "\n\n".join(chat_answer(k, v).removesuffix("\n\n[[ ## completed ## ]]") for k, v in values.items()) \
        + "\n\n[[ ## completed ## ]]"


class InlineBackend:
    """Runs a job in this process; its LMs are real ones talking HTTP to the stub."""

    manager = None

    def start(self, job_id, settings):
        execute(self.manager, job_id)
        return "inline"

    def alive(self, handle):
        return False


@pytest.fixture
def ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def make_config(ref, stub_url, optimizer, teacher=True, **kw):
    student = openai_compatible("stub-small", "stub-small", stub_url, **PRICED)
    large = openai_compatible("stub-large", "stub-large", stub_url, input_price_per_m=3.0, output_price_per_m=15.0)
    base = dict(task_ref=ref, sample=SampleSpec(3, 2, 4, seed=3), student=student,
                reflection=large if teacher else None, threads=2, cache=False, optimizer=optimizer)
    base.update(kw)
    return OptimizeConfig(**base)


TYPED = "Sort each sentence into its section. " + ALL_HINTS.removeprefix("Classify the sentence. ")
BUDGETS = {"gepa": dict(auto=None, max_metric_calls=60), "miprov2": dict(auto="light"),
           "fewshot": dict(auto=None, max_full_evals=2), "own": dict(instruction=TYPED)}


@pytest.mark.slow
def test_each_optimizer_end_to_end_leaves_comparable_runs(settings, ref, stub, capsys):
    stub.responder = responder
    backend = InlineBackend()
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    store, figures = RunStore(settings), {}
    for name, budget in BUDGETS.items():
        stub.reset()
        t0 = time.perf_counter()
        job_id = manager.submit_optimization(make_config(ref, stub.base_url, name, **budget))
        job = manager.get(job_id)
        assert job.state == "succeeded", (name, job.error)
        run = store.get_run(job.run_id)
        m, tags = run.data.metrics, run.data.tags
        assert run.info.status == "FINISHED" and tags["studio.program"] == name
        assert run.info.run_name.startswith(f"{OPTIMIZERS[name].label} · stub-small")
        assert {"optimized_program.json", "original_program.json", "instructions.json", "progress.json",
                "config.json"} <= set(store.list_artifacts(job.run_id))
        assert ("search.json" in store.list_artifacts(job.run_id)) == (name == "gepa")
        assert m["optimization_cost_usd"] == pytest.approx(m["student_cost_usd"] + m["reflection_cost_usd"])
        children = store.list_runs(kind="evaluation", job_id=job_id)
        assert set(children["program"]) == {"original", "optimized"}
        assert manager.progress(job_id)["phase"] == "done"
        if name == "own":  # the optimized half of the paired evaluation is sent the instruction as typed
            systems = [system_text(r["body"]["messages"]) for r in stub.chat_requests()]
            assert sum(TYPED in s for s in systems) == len(systems) // 2 > 0
            assert {r["body"]["model"] for r in stub.chat_requests()} == {"stub-small"}
            assert store.read_json(job.run_id, "instructions.json")["optimized"] == TYPED
        figures[name] = dict(before=m["original_test_accuracy"], after=m["optimized_test_accuracy"],
                             cost=m["optimization_cost_usd"], student=m["student_cost_usd"],
                             reflection=m["reflection_cost_usd"], metric_calls=m["metric_calls_used"],
                             wall_s=round(time.perf_counter() - t0, 2))
    # Comparable: the same test examples under every optimizer.
    prints = {store.get_run(r).data.params["test_fingerprint"]
              for r in store.list_runs(kind="optimization")["run_id"]}
    assert len(prints) == 1
    for name in ("gepa", "miprov2", "fewshot", "own"):
        assert figures[name]["after"] > figures[name]["before"], (name, figures[name])
    assert figures["own"]["cost"] == 0 and figures["own"]["metric_calls"] == 0
    assert figures["miprov2"]["reflection"] > 0 and figures["fewshot"]["reflection"] > 0
    with capsys.disabled():
        print("\nstub figures:", json.dumps(figures))


def test_labeled_fewshot_without_a_teacher_spends_nothing_before_the_test(settings, ref, stub):
    stub.responder = responder
    res = run_optimization(make_config(ref, stub.base_url, "fewshot", teacher=False), RunStore(settings),
                           log_dir=settings.jobs_dir / "fs")
    assert res.status == "succeeded" and res.progress["metric_calls_used"] == 0
    assert res.progress["total_cost_usd"] == 0
    state = RunStore(settings).read_json(res.run_id, "optimized_program.json")["state"]
    assert len(state.get("demos") or state["self"]["demos"]) == 15  # every train example, up to 16
    assert res.optimized_accuracy > res.original_accuracy


@pytest.mark.parametrize("name, budget, at", [("fewshot", dict(auto=None, max_full_evals=6), "candidates"),
                                              ("miprov2", dict(auto="light"), "iteration")])
def test_cancel_between_steps_keeps_the_best_so_far(settings, ref, stub, name, budget, at):
    stub.responder = responder
    stop = threading.Event()

    def sink(p):
        if p.get(at, 0) >= 2:
            stop.set()

    store = RunStore(settings)
    res = run_optimization(make_config(ref, stub.base_url, name, **budget), store, log_dir=settings.jobs_dir / name,
                           progress=sink, should_stop=stop.is_set)
    assert res.status == "cancelled" and res.stop_reason == "cancelled"
    assert store.get_run(res.run_id).info.status == "KILLED"
    assert 2 <= res.progress["candidates"] < 9
    assert store.read_json(res.run_id, "optimized_program.json")["instruction"] == res.best_instruction


@pytest.mark.parametrize("change, message", [
    (dict(optimizer="own"), "needs the prompt"),
    (dict(optimizer="miprov2", reflection=None), "prompt model"),
    (dict(optimizer="miprov2", auto=None, max_metric_calls=50), "auto"),
    (dict(optimizer="fewshot", auto=None, max_metric_calls=50), "candidate programs"),
    (dict(optimizer="simba"), "Unknown optimizer"),
])
def test_bad_optimizer_configs_are_rejected(ref, change, message):
    with pytest.raises(ConfigError, match=message):
        make_config(ref, "http://127.0.0.1:9/v1", **{"optimizer": "gepa", **change})


def test_an_old_config_without_an_optimizer_is_gepa(ref):
    d = make_config(ref, "http://127.0.0.1:9/v1", "miprov2").to_dict()
    d.pop("optimizer")
    assert OptimizeConfig.from_dict(d).optimizer == "gepa"


def test_estimates_per_optimizer(settings, ref):
    task, splits = prepare(ref, SampleSpec(3, 2, 4, seed=3), settings)
    url, n_val, n_test = "http://127.0.0.1:9/v1", len(splits.val), len(splits.test)
    est = {name: estimate(make_config(ref, url, name, **BUDGETS[name]), task, splits) for name in BUDGETS}
    # MIPROv2 light: 10 trials on the whole (small) validation set, after the default program's evaluation.
    assert est["miprov2"].metric_calls >= 11 * n_val and est["miprov2"].reflection_calls_low > 0
    # Few-shot with 2 random candidates: zero-shot, labeled, unshuffled and 2 more, each on the validation set.
    assert est["fewshot"].metric_calls >= 5 * n_val
    labeled = estimate(make_config(ref, url, "fewshot", teacher=False), task, splits)
    assert labeled.metric_calls == 0 and labeled.cost_high_usd == 0
    # Own prompt: only the paired test evaluation.
    assert est["own"].metric_calls == 0 and est["own"].test_calls == 2 * n_test
    assert est["own"].cost_low_usd == est["own"].test_cost_usd > 0
    for e in est.values():
        assert e.cost_low_usd is not None and e.cost_low_usd <= e.cost_high_usd
