"""One truth on the call path (issue 20, items 1-3 and two of 6): answers come from the server named (the cache key
holds the base URL), an inline ``model@URL`` calls that URL, a 429 answered on its retry is a retried success and
not a failure, one classifier names a failure, and concurrent catalog saves lose no model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import dspy
import pytest

from core.cli.common import resolve_models
from core.config.errors import ModelError
from core.evaluation.baseline import run_baselines
from core.evaluation.evaluate import EvalOptions, evaluate
from core.lm.breaker import BreakerSettings, BreakerTripped, CircuitBreaker, classify_failure
from core.lm.cache import EndpointCache
from core.lm.models import ModelCatalog, build_lm, check_connection, classify_error, openai_compatible
from core.optimize import run_optimization
from core.program.program import make_program, to_examples
from core.tasks import SampleSpec, TaskRef, table_task
from core.tracking.store import RunStore
from tests.core.test_cli import ROOT, run_cli
from tests.core.test_optimize import http_config
from tests.scenario import make_table, write_csv
from tests.stub_server import (
    Faults,
    StubError,
    StubLLMServer,
    chat_answer,
    gepa_responder,
    keyword_classifier,
)


def always_results(model, messages, body):
    """Another server's model with the same id: it answers RESULTS to everything."""
    return chat_answer("target", "RESULTS")


def scenario(per_label=4):
    df = make_table(per_label)
    task = table_task(df, text_column="description", label_column="target", name="scenario")
    return task, to_examples(df, task)


def free_port(candidates=range(40100, 40200)):
    """A port nobody listens on, whose number contains "401" (the text a text-based classifier took for auth)."""
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port with 401 in it")


def once_then(responder, retry_after="0.05"):
    """Answer 429 (with Retry-After) the first time each prompt is seen, then as ``responder`` does."""
    seen, lock = set(), threading.Lock()

    def reply(model, messages, body):
        key = (model, repr(messages))
        with lock:
            first = key not in seen
            seen.add(key)
        if first:
            reply.limited += 1
            return StubError(429, "Rate limit reached for requests", headers={"Retry-After": retry_after})
        return responder(model, messages, body)

    reply.limited = 0  # 429s answered
    return reply


# 1. The cache key holds the base URL -------------------------------------------------------------------------


def test_two_servers_with_one_model_id_each_answer_from_their_own():
    task, examples = scenario()
    with StubLLMServer() as a, StubLLMServer(responder=always_results) as b:
        first = evaluate(make_program(task), openai_compatible("stub", "stub-small", a.base_url), examples, task,
                         EvalOptions(threads=4))
        other = evaluate(make_program(task), openai_compatible("stub", "stub-small", b.base_url), examples, task,
                         EvalOptions(threads=4))
        # Before: B got 0 requests and reported A's answers (accuracy 1.0, 20 cached).
        assert len(b.chat_requests()) == 20 and other.metrics["accuracy"] == pytest.approx(0.2)
        assert other.metrics["cached"] == 0 and other.metrics["cached_calls"] == 0
        again = evaluate(make_program(task), openai_compatible("stub", "stub-small", a.base_url), examples, task,
                         EvalOptions(threads=4))
        assert len(a.chat_requests()) == 20 and again.metrics["accuracy"] == first.metrics["accuracy"] == 1.0
        assert again.metrics["cached"] == 20 and again.metrics["cached_calls"] == 20 == again.metrics["lm_calls"]
        assert again.metrics["spent_usd"] == 0.0


def test_the_key_holds_the_base_url_never_the_api_key_and_survives_lm_copy():
    with StubLLMServer() as a, StubLLMServer(responder=always_results) as b:
        lm = build_lm(openai_compatible("stub", "stub-small", a.base_url))
        assert isinstance(dspy.cache, EndpointCache)
        assert "RESULTS" not in lm("Patients were randomized to drug A.")[0]
        moved = lm.copy(api_base=b.base_url, rollout_id=1, temperature=1.0)  # as BootstrapFewShot copies an LM
        assert "RESULTS" in moved("Patients were randomized to drug A.")[0] and len(b.chat_requests()) == 1
        lm.copy()("Patients were randomized to drug A.")  # a plain copy: A's cached answer, no new request
        assert len(a.chat_requests()) == 1
    request = {"model": "openai/m", "messages": [], "api_base": "http://a/v1", "api_key": "sk-one"}
    key, ignored = dspy.cache.cache_key, ["api_key", "api_base", "base_url"]  # DSPy's own ignore list
    assert key(request, ignored) != key({**request, "api_base": "http://b/v1"}, ignored)
    assert key(request, ignored) == key({**request, "api_key": "sk-two"}, ignored)


def test_two_catalog_entries_with_one_model_id_on_two_servers(store, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "s.csv", 8)), name="scenario")
    with StubLLMServer() as a, StubLLMServer(responder=always_results) as b:
        specs = [openai_compatible("strong", "stub-small", a.base_url),
                 openai_compatible("other", "stub-small", b.base_url)]
        outcomes = run_baselines(store, ref, SampleSpec(2, 0, 4, seed=1), specs, threads=4)
        accuracy = {o.spec.name: o.result.metrics["accuracy"] for o in outcomes}
        assert len(a.chat_requests()) == len(b.chat_requests()) == 20  # before: "other" sent 0 requests
    assert accuracy == {"strong": 1.0, "other": pytest.approx(0.2)}


# 2. model@URL calls that URL ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_inline_model_at_url_calls_that_url_not_a_catalog_entry(settings, tmp_path):
    with StubLLMServer() as a, StubLLMServer() as b:
        catalog = ModelCatalog.load(settings.catalog_path)
        catalog.add(openai_compatible("local", "stub-small", a.base_url))
        catalog.save()
        csv = write_csv(tmp_path / "s.csv", 8)
        out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{b.base_url}",
                      "--train-per-label", "2", "--test-per-label", "2", "-q")
        assert out.returncode == 0, out.stderr
        # Before: the catalog's "local" (same model string, server A) ran; 0 requests reached B.
        assert len(b.chat_requests()) == 10 and len(a.chat_requests()) == 0
        out = run_cli("check", f"openai/stub-small@{b.base_url}")
        assert out.returncode == 0 and out.stdout.startswith("OK stub-small") and len(a.chat_requests()) == 0


def test_an_inline_model_whose_name_the_catalog_holds_on_another_url_is_refused(tmp_path):
    catalog = ModelCatalog.load(tmp_path / "models.json")
    catalog.add(openai_compatible("stub-small", "stub-small", "http://127.0.0.1:9001/v1"))
    with pytest.raises(ModelError) as err:
        resolve_models(["openai/stub-small@http://127.0.0.1:9002/v1"], catalog, None)
    assert "http://127.0.0.1:9002/v1" in str(err.value) and "http://127.0.0.1:9001/v1" in str(err.value)
    same = resolve_models(["openai/stub-small@http://127.0.0.1:9001/v1/"], catalog, None)[0]
    assert same == catalog.models["stub-small"]  # the catalog's own entry for that very server
    both = resolve_models(["openai/m@http://127.0.0.1:1/v1", "openai/m@http://127.0.0.1:2/v1"], catalog, None)
    assert [s.api_base for s in both] == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert len({s.name for s in both}) == 2
    flag = resolve_models(["openai/m3"], catalog, "http://127.0.0.1:3/v1")[0]
    assert flag.api_base == "http://127.0.0.1:3/v1" and flag.provider == "openai-compatible"
    with pytest.raises(ModelError, match="'gpt-4o-mini'.*its provider's default URL"):  # a preset's name, elsewhere
        resolve_models(["openai/gpt-4o-mini"], catalog, "http://127.0.0.1:3/v1")


# 3. The breaker counts a call's final outcome -----------------------------------------------------------------


def test_a_429_answered_on_its_retry_is_a_retried_success_not_a_failure():
    task, examples = scenario(20)  # 100 different sentences
    with StubLLMServer(responder=once_then(keyword_classifier)) as stub:
        # Before: "stopped after 15 provider failures in a row" (every first try counted by the breaker).
        res = evaluate(make_program(task), openai_compatible("stub", "stub-small", stub.base_url), examples, task,
                       EvalOptions(threads=16, cache=False))
        assert len(stub.chat_requests()) == 200
    m = res.metrics
    assert (m["n"], m["failed"], m["correct"], m["retried"]) == (100, 0, 100, 100)


def test_a_provider_that_keeps_answering_429_still_trips_the_breaker():
    task, examples = scenario(20)
    with StubLLMServer(faults=Faults(rate_limit=1.0, retry_after_s=0.05)) as stub:
        with pytest.raises(BreakerTripped, match="5 provider failures in a row") as err:
            evaluate(make_program(task), openai_compatible("stub", "stub-small", stub.base_url), examples, task,
                     EvalOptions(threads=4, cache=False))
        assert len(stub.chat_requests()) < 40  # 5 calls x 3 tries, and the calls in flight
    assert err.value.kind == "rate_limit"


def test_a_dead_provider_still_stops_the_run_within_seconds():
    task, examples = scenario(20)
    spec = openai_compatible("stub", "stub-small", f"http://127.0.0.1:{free_port()}/v1")
    start = time.perf_counter()
    with pytest.raises(BreakerTripped, match="tries in a row got no reply") as err:
        evaluate(make_program(task), spec, examples, task, EvalOptions(threads=8, cache=False))
    took = time.perf_counter() - start
    print(f"connection refused: stopped after {took:.2f} s")
    assert err.value.kind == "unreachable" and took < 5, took  # 1.0 s before and after: tries without a reply count


def test_a_gepa_run_whose_calls_are_each_429_once_is_not_stopped(settings, tmp_path):
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "s.csv", 12)), name="scenario")
    responder = once_then(gepa_responder)
    with StubLLMServer(responder=responder) as stub:
        res = run_optimization(http_config(ref, stub, max_metric_calls=30), RunStore(settings),
                               log_dir=settings.jobs_dir / "r" / "gepa")
        models = {r["body"]["model"] for r in stub.chat_requests()}
    assert res.status == "succeeded", res.error
    p = res.progress
    assert p["failed_student_calls"] == 0 and p["failed_reflection_calls"] == 0 and p.get("stopped_by") != "breaker"
    assert models == {"stub-small", "stub-large"} and responder.limited > 20  # DSPy's own retry answered each 429


def test_tries_without_a_reply_count_at_once_and_a_reply_between_them_resets_the_count():
    breaker = CircuitBreaker("m", BreakerSettings(consecutive=5, min_calls=1000), tries_per_call=3)
    assert not any(breaker.record_try("rate_limit", "429") for _ in range(50))  # answered: alive, counted at the end
    assert not any(breaker.record_try("unreachable", "refused") for _ in range(14))
    breaker.record_try("rate_limit", "429")  # a reply: the provider is there
    assert not any(breaker.record_try("unreachable", "refused") for _ in range(14))
    assert breaker.record_try("unreachable", "refused") and breaker.reason == "15 tries in a row got no reply"
    assert breaker.calls == 0  # tries are not calls: no call has ended yet


# 4. One classifier --------------------------------------------------------------------------------------------


def test_one_classifier_a_refused_port_with_401_in_it_is_unreachable_not_auth():
    port = free_port()
    res = check_connection(openai_compatible("stub", "stub-small", f"http://127.0.0.1:{port}/v1"), timeout_s=5)
    assert not res.ok and res.kind == "unreachable", res  # before: "auth" ("401" in the text)
    assert "base URL" in res.hint
    for exc in (ConnectionRefusedError(f"failed to connect to 127.0.0.1:{port}"), RuntimeError("HTTP 401 Unauthorized"),
                RuntimeError("Error code: 429 - rate limit"), TimeoutError("timed out"), RuntimeError("boom")):
        assert classify_error(exc)[0] == classify_failure(exc)
    assert classify_failure(RuntimeError("HTTP 401 Unauthorized")) == "auth"


# 6. The catalog under concurrent saves ------------------------------------------------------------------------


ADD_MODELS = """
import sys, time
from pathlib import Path
from core.lm.models import ModelCatalog, openai_compatible
path, prefix, gate = sys.argv[1:]
while not Path(gate).exists():
    time.sleep(0.01)
for i in range(5):
    catalog = ModelCatalog.load(path)
    catalog.add(openai_compatible(f"{prefix}-{i}", f"m-{prefix}-{i}", "http://127.0.0.1:9/v1"))
    catalog.save()
"""


def _add_models(path, prefix, gate):
    while not gate.exists():
        time.sleep(0.01)
    for i in range(5):
        catalog = ModelCatalog.load(path)
        catalog.add(openai_compatible(f"{prefix}-{i}", f"m-{prefix}-{i}", "http://127.0.0.1:9/v1"))
        catalog.save()


@pytest.mark.slow
def test_concurrent_catalog_saves_lose_no_model(tmp_path):
    """Three processes and four threads add five models each, all at once."""
    path, gate = tmp_path / "models.json", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", ADD_MODELS, str(path), f"p{k}", str(gate)], cwd=ROOT, env=env)
             for k in range(3)]
    threads = [threading.Thread(target=_add_models, args=(path, f"t{k}", gate)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # the processes import core.lm.models meanwhile
    gate.touch()
    for t in threads:
        t.join(60)
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    own = ModelCatalog.load(path).own_names()
    assert len(own) == 35, sorted(own)  # before: models lost to interleaved load/save
    assert not list(tmp_path.glob("*.tmp"))
