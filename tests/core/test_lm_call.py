"""One path for an LM call (core.lm.call): guard, rate limit, trace and a local server's slot gate are steps of one
wrapper, run in one documented order. Real stub-server calls over HTTP, a real MLflow store, tracing on."""

from __future__ import annotations

import asyncio
import copy
import threading
import time

import pytest

from core.config.errors import ProviderError
from core.lm.breaker import BreakerSettings
from core.lm.call import ORDER, Step, steps_of, with_step
from core.lm.limits import forget_limiters, limit_key, limiter
from core.lm.limits import slots as slot_gates
from core.lm.models import build_lm, openai_compatible
from core.optimize.guard import CallGuard, guard_lm
from core.tracking import tracing
from tests.fake_lm import fake_lm
from tests.stub_server import StubLLMServer

LATENCY_S = 0.1


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_TRACES", "on")  # as tests/core/test_tracing.py: on whatever the suite's default
    monkeypatch.delenv("GEPA_STUDIO_LIMITER", raising=False)
    monkeypatch.delenv("GEPA_STUDIO_DATA_DIR", raising=False)  # the memory limiter: this test's buckets only
    forget_limiters()
    slot_gates.forget_slots()
    yield
    forget_limiters()
    slot_gates.forget_slots()


@pytest.fixture
def server():
    with StubLLMServer(slots=1, latency_s=LATENCY_S) as s:  # says "1 slot" at /props: LMs on it are gated
        yield s


def traces_of(store, run_id):
    tracing.flush()
    exp = store.get_run(run_id).info.experiment_id
    return list(store.client.search_traces(locations=[exp], run_id=run_id, max_results=100))


def trace_counts(store, run_id):
    tracing.flush()
    return tracing.trace_counts(store, run_id)


def wrapped(store, server, rpm=600, breaker=None):
    """A model on ``server`` built as a run builds it (limit and gate), guarded as an optimization guards it, traced
    as a run traces it: every step of a call."""
    spec = openai_compatible("small", "stub-small", server.base_url, rpm=rpm, num_retries=0)
    guard = CallGuard("student", spec, breaker)
    run_id = store.start_run("evaluation", "lm-call", run_name="calls")
    lm = tracing.RunTracer(store, run_id).lm(guard_lm(build_lm(spec, cache=False), guard), spec, "evaluation")
    return spec, guard, run_id, lm


def test_a_limited_traced_guarded_call_books_once_traces_once_counts_once(store, server):
    spec, guard, run_id, lm = wrapped(store, server)
    assert list(steps_of(lm)) == ["guard", "limit", "trace", "gate"] == list(ORDER)
    lm("The aim was to assess it.")
    asyncio.run(lm.acall("The aim was to assess it again."))
    for each in (lm.copy(temperature=0.3), copy.copy(lm)):  # copies keep the steps, the same ones
        assert list(steps_of(each).values()) == list(steps_of(lm).values())
        each("A copy's call: the aim was to assess it.")
    calls = 4
    assert len(server.chat_requests()) == calls
    assert limiter().stats()[limit_key(spec)]["calls"] == calls  # booked once each
    assert guard.calls == calls and guard.failed == 0  # counted once each
    assert trace_counts(store, run_id) == {"evaluation": calls}  # traced once each
    assert len(lm.history) == 3  # DSPy's history as before: lm.copy(...) starts its own, copy.copy shares it
    assert lm.dump_state()["_dspy_lm_class"] == "dspy.clients.lm.LM"  # a saved program reloads a plain LM


def test_a_tripped_guard_books_nothing_traces_nothing_and_sends_nothing(store, server):
    spec, guard, run_id, lm = wrapped(store, server, breaker=BreakerSettings(consecutive=1))
    lm("The aim was to assess it.")
    assert guard.breaker.record("unreachable", "Connection refused")  # the breaker trips
    with pytest.raises(ProviderError):
        lm("The aim was to assess it again.")
    assert len(server.chat_requests()) == 1 and limiter().stats()[limit_key(spec)]["calls"] == 1
    assert guard.calls == 1 and trace_counts(store, run_id) == {"evaluation": 1}


def test_a_call_waiting_for_the_limiter_holds_no_slot_and_its_wait_is_in_no_trace(store, server):
    spec, guard, run_id, lm = wrapped(store, server, rpm=60)  # a call a second
    other = build_lm(openai_compatible("other", "stub-large", server.base_url), cache=False)  # gated, not limited
    assert list(steps_of(other)) == ["gate"]
    lm("The aim was one.")
    took: list[float] = []

    def second() -> None:
        start = time.perf_counter()
        lm("The aim was two.")  # waits about a second for the limiter
        took.append(time.perf_counter() - start)

    waiting = threading.Thread(target=second)
    waiting.start()
    time.sleep(0.3)
    queued = slot_gates.queue_clock()
    other("Meanwhile, the aim was three.")  # the server's one slot is free: the limited call waits without it
    assert slot_gates.queue_clock() - queued < 0.2
    waiting.join()
    assert took[0] > 0.7
    traces = traces_of(store, run_id)
    assert len(traces) == 2
    for t in traces:  # the span is the call's (and a slot's wait, apart), never the rate limit's wait
        span = t.data.spans[0]
        assert (span.end_time_ns - span.start_time_ns) / 1e9 < 0.5
        assert span.attributes["studio.latency_s"] < 0.5 and span.attributes["studio.queue_s"] < 0.2


class Recording(Step):
    """A step that writes down when it starts and ends."""

    def __init__(self, name, events):
        self.name, self.events = name, events

    def start(self, call):
        self.events.append(f"{self.name} start")

    def end(self, call):
        self.events.append(f"{self.name} end" + (" (failed)" if call.error else ""))


def test_steps_run_in_the_one_order_whatever_order_they_are_attached_in():
    events: list[str] = []

    def reply(system, user):
        events.append("call")
        if "fail" in user:
            raise RuntimeError("the model is gone")
        return "ok"

    lm = fake_lm(reply)
    for name in reversed(ORDER):
        with_step(lm, Recording(name, events))
    lm("go")
    assert events == ["guard start", "limit start", "trace start", "gate start", "call",
                      "gate end", "trace end", "limit end", "guard end"]
    events.clear()
    with pytest.raises(Exception, match="the model is gone"):
        lm("fail")
    assert events[4:] == ["call", "gate end (failed)", "trace end (failed)", "limit end (failed)", "guard end (failed)"]
    with_step(lm, Recording("limit", events))  # attached again: replaced, not doubled
    assert len(steps_of(lm)) == 4
    with pytest.raises(ValueError, match="guard, limit, trace, gate"):
        with_step(lm, Recording("cache", events))


def test_a_step_that_raises_as_it_starts_stops_the_call_and_only_the_steps_before_it_end():
    events: list[str] = []

    class Refusing(Recording):
        def start(self, call):
            super().start(call)
            raise ProviderError("tripped", "wait")

    lm = fake_lm(lambda s, u: events.append("call") or "ok")
    with_step(lm, Recording("guard", events))
    with_step(lm, Refusing("limit", events))
    with_step(lm, Recording("gate", events))
    with pytest.raises(ProviderError):
        asyncio.run(lm.acall("go"))
    assert events == ["guard start", "limit start", "guard end (failed)"]
