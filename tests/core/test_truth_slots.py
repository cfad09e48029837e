"""A local server's slots (issue 20, item 9): threads capped to them, queue wait reported apart from the model's
latency, and failed calls' traces named with the evaluation's failure kind. A real stub server on 127.0.0.1 that
serves ``slots`` chat calls at once and says so at ``GET /props``, as llama.cpp does."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from core.evaluation.baseline import run_evaluation
from core.evaluation.evaluate import EvalOptions, aggregate, evaluate, read_records
from core.lm.limits import slots
from core.lm.models import ModelSpec, openai_compatible
from core.optimize import OptimizeConfig, run_optimization
from core.program.program import make_program, to_examples
from core.tasks import SampleSpec, TaskRef, table_task
from tests.scenario import make_table, write_csv
from tests.stub_server import StubError, StubLLMServer, field_value, keyword_classifier, last_user_text

LATENCY_S = 0.2


@pytest.fixture(autouse=True)
def fresh_slots():
    """What servers said is cached per process and base URL: a later test's server may get the same port."""
    slots.forget_slots()
    yield
    slots.forget_slots()


@pytest.fixture
def one_slot():
    with StubLLMServer(slots=1, latency_s=LATENCY_S) as server:
        yield server


@pytest.fixture
def table():
    df = make_table(4).head(8).reset_index(drop=True)
    return df, table_task(df, text_column="description", label_column="target", name="scenario")


def local(server, **kw):
    return openai_compatible("llama", "stub-small", server.base_url, num_retries=0, **kw)


def test_a_one_slot_server_caps_an_evaluations_threads_and_says_so(store, one_slot, table):
    df, task = table
    run_id, result = run_evaluation(store, task, local(one_slot), make_program(task), df,
                                    options=EvalOptions(threads=8, cache=False))
    run = store.get_run(run_id)
    assert run.data.params["threads"] == "1"  # was 8: seven threads queued at the server
    assert run.data.tags[slots.THREADS_CAPPED_TAG] == "8 -> 1 (server has 1 slot)"
    records = result.records
    assert len(records) == 8 and result.metrics["accuracy"] == 1.0
    # The model's latency is the call's, about the server's 0.2 s, not growing with a queue (the first call
    # also sets up the client).
    latencies = sorted(records["latency_s"])
    assert latencies[0] >= LATENCY_S * 0.9 and latencies[-2] < LATENCY_S + 0.4 and latencies[-1] < 1.2, latencies
    assert "queue_s" in records and (records["queue_s"] < 0.1).all()
    assert run.data.metrics["p50_queue_s"] < 0.1 and run.data.metrics["p50_latency_s"] < LATENCY_S + 0.4


def test_the_gate_times_the_queue_apart_from_the_models_latency(one_slot, table):
    """Eight threads on a one-slot server (no cap: evaluate is called directly): each call still takes 0.2 s;
    the rest of the wait is the queue, and it is reported as queue_s."""
    df, task = table
    result = evaluate(make_program(task), local(one_slot), to_examples(df, task), task,
                      EvalOptions(threads=8, cache=False))
    records = result.records
    latencies = sorted(records["latency_s"])
    assert latencies[-2] < LATENCY_S + 0.4 and latencies[-1] < 1.2, latencies  # was 0.2, 0.4, ... 1.6 s
    queued = sorted(records["queue_s"])
    assert queued[-1] > 5 * LATENCY_S and sum(queued) > 10 * LATENCY_S, queued  # 0, 0.2, ... 1.4 s
    assert result.metrics["p50_queue_s"] > 2 * LATENCY_S
    assert result.metrics["p50_latency_s"] < LATENCY_S + 0.4


def test_a_server_without_props_is_not_capped(store, stub, table):
    df, task = table
    spec = local(stub)
    assert slots.server_slots(spec) == slots.Slots(stub.root_url, None, "unknown")  # /props: 404
    run_id, _ = run_evaluation(store, task, spec, make_program(task), df, options=EvalOptions(threads=4, cache=False))
    run = store.get_run(run_id)
    assert run.data.params["threads"] == "4" and slots.THREADS_CAPPED_TAG not in run.data.tags
    assert slots.gate_lm(object(), spec).__class__ is object  # no gate either


def test_llama_cpp_props_are_read_once_per_base_url(one_slot):
    assert slots.parse_props({"total_slots": 4, "default_generation_settings": {"n_ctx": 4096}}) == 4
    for bad in ({}, {"total_slots": 0}, {"total_slots": "4"}, {"total_slots": True}, [4], None):
        assert slots.parse_props(bad) is None
    assert slots.server_root("http://h:8080/v1/") == "http://h:8080" and slots.server_root("http://h/x") == "http://h/x"
    spec = local(one_slot)
    found = slots.server_slots(spec)
    assert found == slots.Slots(one_slot.root_url, 1, "llama.cpp")
    assert slots.cap_threads(1, [spec]) == (1, None) and slots.cap_threads(3, [spec, None])[0] == 1
    root = one_slot.root_url
    one_slot.stop()  # asked once: the answer stays for this process
    assert slots.server_slots(openai_compatible("other", "stub-large", root + "/v1")) == found
    assert slots.server_slots(openai_compatible("x", "y", "http://127.0.0.1:9/v1")).total is None  # refused
    assert slots.server_slots(ModelSpec("api", "openai/gpt-4o-mini")) is None  # not local: never asked


def test_a_server_that_does_not_answer_is_asked_for_about_a_second_only():
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        start = time.perf_counter()
        found = slots.probe_slots(f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
    assert found.total is None and time.perf_counter() - start < 1.8


def test_ollama_is_recognised_and_left_uncapped():
    """Ollama's parallelism (OLLAMA_NUM_PARALLEL) is not exposed, and its default changed between versions."""

    class Ollama(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            found = self.path == "/api/version"
            body = json.dumps({"version": "0.12.0"} if found else {"error": "not found"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ollama)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spec = openai_compatible("qwen (Ollama)", "qwen2.5:0.5b", f"http://127.0.0.1:{server.server_address[1]}/v1")
        assert slots.server_slots(spec).server == "ollama" and slots.server_slots(spec).total is None
        assert slots.cap_threads(8, [spec]) == (8, None)
    finally:
        server.shutdown()
        server.server_close()


def test_records_older_than_queue_s_still_load(tmp_path, table):
    df, task = table
    path = tmp_path / "records.jsonl"
    old = {"idx": 0, "text": df.description[0], "gold": "BACKGROUND", "predicted": "BACKGROUND", "correct": True,
           "outcome": "correct", "latency_s": 0.5, "input_tokens": 3, "output_tokens": 1, "cost_usd": 0.0, "calls": 1}
    path.write_text(json.dumps(old) + "\n", encoding="utf-8")
    records = read_records(path)
    assert records.loc[0, "queue_s"] == 0.0 and records.loc[0, "latency_s"] == 0.5
    metrics = aggregate(pd.DataFrame(records.drop(columns=["queue_s"])), task.labels)[0]  # an old records.csv
    assert metrics["p50_queue_s"] == 0.0 and metrics["accuracy"] == 1.0


def test_an_optimization_with_a_one_slot_student_is_capped(store, one_slot, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 6)), name="scenario")
    config = OptimizeConfig(task_ref=ref, sample=SampleSpec(1, 0, 1, seed=3), student=local(one_slot), reflection=None,
                            optimizer="own", instruction="Classify the sentence.", threads=4, cache=False)
    seen = []
    res = run_optimization(config, store, log_dir=tmp_path / "own", on_run_created=seen.append)
    assert res.status == "succeeded", res.error
    run = store.get_run(res.run_id)
    assert seen == [res.run_id] and run.data.params["threads"] == "1"
    assert run.data.tags[slots.THREADS_CAPPED_TAG] == "4 -> 1 (server has 1 slot)"


def test_a_failed_calls_trace_names_the_failure_kind_its_record_does(store, stub, table, monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "on")

    def one_fails(model, messages, body):
        if "cohort 1 " in field_value(last_user_text(messages), "description"):
            return StubError(500, "upstream exploded")
        return keyword_classifier(model, messages, body)

    stub.responder = one_fails
    df, task = table
    run_id, result = run_evaluation(store, task, local(stub), make_program(task), df,
                                    options=EvalOptions(threads=2, cache=False))
    failed = result.records[result.records["outcome"] == "failed"]
    assert failed["error_kind"].tolist() == ["server_error"]
    traces = list(store.client.search_traces(locations=[store.get_run(run_id).info.experiment_id], run_id=run_id))
    errors = [t for t in traces if t.info.state == "ERROR"]
    assert [t.info.tags.get("studio.failure_kind") for t in errors] == ["server_error"]  # was: no kind at all
    assert all("studio.failure_kind" not in t.info.tags for t in traces if t.info.state == "OK")
    assert all("studio.queue_s" in t.data.spans[0].attributes for t in traces)
