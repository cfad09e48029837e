"""The shared rate limiter: the pure GCRA core, its stores (memory, SQLite across processes), and LMs built with a
limit against the stub server (real HTTP: the stub's own request times give the rate)."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.config.errors import ConfigError, ModelError
from core.lm.call import Step, steps_of, with_step
from core.lm.limits import Bucket, Limiter, achieved_rate, forget_limiters, limit_key, limiter, reserve, settle
from core.lm.limits.gcra import LIMIT_MEMORY_S, TOKEN_BURST_S
from core.lm.limits.stores import FileStore, MemoryStore
from core.lm.models import ModelSpec, build_lm
from tests.stub_server import StubLLMServer, keyword_classifier

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_limiters(monkeypatch):
    monkeypatch.delenv("GEPA_STUDIO_LIMITER", raising=False)
    monkeypatch.delenv("GEPA_STUDIO_DATA_DIR", raising=False)
    forget_limiters()
    yield
    forget_limiters()


# The pure core ----------------------------------------------------------------------------------------------


def test_calls_arriving_together_are_spaced_at_60_over_rpm():
    bucket, rpm = Bucket(), 600
    goes = [reserve(bucket, 100.0, rpm, None) + 100.0 for _ in range(200)]
    assert goes[0] == 100.0  # an idle bucket lets the first call go at once
    gaps = [b - a for a, b in zip(goes, goes[1:], strict=False)]
    assert min(gaps) == pytest.approx(0.1) and max(gaps) == pytest.approx(0.1)
    assert achieved_rate(goes) == pytest.approx(rpm, rel=0.01)
    assert bucket.stats() == {"calls": 200, "waits": 199,
                              "waited_s": pytest.approx(sum(g - 100 for g in goes), abs=1e-3), "rpm": 600, "tpm": None}


def test_four_simulated_workers_hold_the_rate_within_one_percent():
    bucket, rpm, latency = Bucket(), 120, 0.05
    ready = [0.0, 0.01, 0.02, 0.03]  # when each worker next wants to call
    goes = []
    for _ in range(400):
        w = min(range(4), key=ready.__getitem__)
        go = ready[w] + reserve(bucket, ready[w], rpm, None)
        goes.append(go)
        ready[w] = go + latency
    assert achieved_rate(goes) == pytest.approx(rpm, rel=0.01)
    assert achieved_rate(goes, 10.0, 110.0) == pytest.approx(rpm, rel=0.01)


def test_a_bucket_idle_for_long_gives_no_burst():
    bucket = Bucket()
    assert reserve(bucket, 0.0, 60, None) == 0.0
    assert reserve(bucket, 30.0, 60, None) == 0.0  # idle: goes at once
    assert reserve(bucket, 30.0, 60, None) == pytest.approx(1.0)  # but the next one waits its full interval


def test_tokens_are_reserved_then_settled_with_the_real_usage():
    bucket, tpm = Bucket(), 6000  # 100 tokens a second: 500 tokens take 5 s of the bucket
    assert reserve(bucket, 0.0, None, tpm, 500) == 0.0
    assert reserve(bucket, 0.0, None, tpm, 500) == 0.0  # 10 s booked ahead: still within the burst
    assert TOKEN_BURST_S == 10.0
    assert reserve(bucket, 0.0, None, tpm, 500) == pytest.approx(5.0)  # 15 s booked: waits 5 s
    settle(bucket, reserved=500, used=100)  # the first call used 100: 4 s come back
    assert reserve(bucket, 5.0, None, tpm, 500) == pytest.approx(1.0)  # 11 + 5 - 10 = 6: one second after 5
    settle(bucket, reserved=500, used=2500)  # a call used more than it reserved: 20 s of debt
    assert reserve(bucket, 6.0, None, tpm, 500) == pytest.approx(25.0)  # booked to 16 + 20 + 5 - 10 = 31


def test_a_call_bigger_than_the_burst_goes_when_the_bucket_is_idle():
    bucket = Bucket()
    assert reserve(bucket, 0.0, None, 600, 1000) == 0.0  # 100 s of tokens, idle bucket
    assert reserve(bucket, 1.0, None, 600, 10) == pytest.approx(100.0 + 1.0 - 10.0 - 1.0)


def test_the_strictest_limit_wins_until_it_is_a_minute_old():
    bucket = Bucket()
    reserve(bucket, 0.0, 60, None)
    assert reserve(bucket, 0.0, 600, None) == pytest.approx(1.0)  # the 60 rpm spec's interval holds
    assert bucket.rpm == 60
    t = LIMIT_MEMORY_S + 5
    reserve(bucket, t, 600, None)
    assert bucket.rpm == 600 and reserve(bucket, t, 600, None) == pytest.approx(0.1)


def test_the_bucket_key_hashes_the_key_value_and_never_holds_it(monkeypatch):
    monkeypatch.setenv("STUDIO_TEST_KEY", "sk-live-0123456789abcdef")
    spec = ModelSpec("a", "openai/gpt-4o-mini", api_key_env="STUDIO_TEST_KEY", rpm=10)
    key = limit_key(spec)
    assert len(key) == 16 and int(key, 16) >= 0
    assert "0123456789" not in key and "sk-live" not in key
    assert limit_key(ModelSpec("b", "openai/gpt-4o-mini", api_key_env="STUDIO_TEST_KEY")) == key  # same key+model
    assert limit_key(ModelSpec("c", "openai/gpt-4.1-mini", api_key_env="STUDIO_TEST_KEY")) != key  # other model
    monkeypatch.setenv("STUDIO_TEST_KEY", "sk-live-another-key-value")
    assert limit_key(spec) != key  # another key: another bucket


def test_model_spec_limits_validate_and_round_trip():
    spec = ModelSpec("m", "openai/x", rpm=600, tpm=100_000)
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert ModelSpec.from_dict({**spec.to_dict(), "rpm": 600.0}).rpm == 600  # a form's number
    old = {k: v for k, v in spec.to_dict().items() if k not in ("rpm", "tpm")}
    assert ModelSpec.from_dict(old).rpm is None and ModelSpec.from_dict(old).tpm is None
    for bad in (0, -5, 1.5, True, "60"):
        with pytest.raises(ModelError, match="requests per minute is not a whole number"):
            ModelSpec("m", "openai/x", rpm=bad)
    with pytest.raises(ModelError, match="tokens per minute"):
        ModelSpec("m", "openai/x", tpm=0)


def test_an_unknown_store_is_refused_when_the_lm_is_built(monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_LIMITER", "redis")
    with pytest.raises(ConfigError, match="ray, file, memory"):
        build_lm(ModelSpec("m", "openai/x", api_base="http://127.0.0.1:9/v1", provider="openai-compatible", rpm=5))


def test_a_store_that_fails_falls_back_once_with_a_warning(caplog):
    class Down:
        kind = "ray"

        def reserve(self, *a):
            raise ConnectionError("no cluster")

    lim = Limiter(Down(), MemoryStore)
    with caplog.at_level(logging.WARNING, logger="core.lm.limits"):
        assert lim.reserve("k", 60, None).wait_s == 0.0
        assert lim.reserve("k", 60, None).wait_s == pytest.approx(1.0, abs=0.05)
    assert lim.kind == "memory" and sum("cannot be reached" in r.message for r in caplog.records) == 1


# Stores shared by threads and processes ------------------------------------------------------------------------


def _hammer(lim: Limiter, key: str, rpm: int, until: float, out: list[float]) -> None:
    while True:
        lim.acquire(key, rpm, None)
        now = time.time()
        if now >= until:
            return
        out.append(now)


def test_the_memory_store_holds_rpm_across_four_threads():
    lim, rpm, start = Limiter(MemoryStore()), 600, time.time()
    out: list[float] = []
    threads = [threading.Thread(target=_hammer, args=(lim, "k", rpm, start + 3.0, out)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert achieved_rate(out, start, start + 3.0) == pytest.approx(rpm, rel=0.10)
    assert lim.stats()["k"]["waits"] >= len(out) - 2


CHILD = """
import json, sys, threading, time
from pathlib import Path
from core.lm.limits import Limiter
from core.lm.limits.stores import FileStore
lim, until, out = Limiter(FileStore(Path(sys.argv[1]))), float(sys.argv[2]), []
def run():
    while True:
        lim.acquire("shared", 600, None)
        now = time.time()
        if now >= until:
            return
        out.append(now)
threads = [threading.Thread(target=run) for _ in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_the_file_store_holds_rpm_across_two_processes(tmp_path):
    db, start = tmp_path / "limits.db", time.time() + 2.0  # both children start booking at about the same time
    FileStore(db)
    procs = [subprocess.Popen([sys.executable, "-c",
                               f"import time; time.sleep(max(0, {start} - time.time()))\n" + CHILD, str(db),
                               str(start + 6.0)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(outs), "each process made calls"
    begin, end = max(out[0] for out in outs), min(out[-1] for out in outs)  # both processes were booking
    assert end - begin > 4.0
    merged = sorted(t for out in outs for t in out)
    assert achieved_rate(merged, begin, end) == pytest.approx(600, rel=0.10)
    assert FileStore(db).stats()["shared"]["calls"] >= len(merged)


# LMs built with a limit, against the stub server ---------------------------------------------------------------


def _timed_stub() -> tuple[StubLLMServer, list[float]]:
    times: list[float] = []

    def responder(model, messages, body):
        times.append(time.time())
        return keyword_classifier(model, messages, body)

    return StubLLMServer(responder=responder), times


def test_an_lm_with_rpm_holds_it_across_four_threads_against_the_stub(monkeypatch, caplog):
    monkeypatch.setenv("STUDIO_TEST_KEY", "sk-test-secret-value-42")
    server, times = _timed_stub()
    with server:
        spec = ModelSpec("stub", "openai/stub-small", provider="openai-compatible", api_base=server.base_url,
                         api_key_env="STUDIO_TEST_KEY", rpm=300, max_tokens=20)
        lm = build_lm(spec, cache=False)
        assert "limit" in steps_of(lm) and limiter().kind == "memory"
        until = time.time() + 4.0

        def work(i: int) -> None:
            n = 0
            while time.time() < until:
                lm(f"Sentence {i}-{n}: the aim was to assess it.")
                n += 1

        with caplog.at_level(logging.INFO, logger="core.lm.limits"):
            threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert achieved_rate(times, min(times), until) == pytest.approx(300, rel=0.10)
    gaps = sorted(b - a for a, b in zip(sorted(times), sorted(times)[1:], strict=False))
    assert gaps[len(gaps) // 2] == pytest.approx(0.2, rel=0.10)  # spaced, not bursts
    stats = limiter().stats()[limit_key(spec)]
    assert stats["waits"] >= len(times) // 2 and stats["waited_s"] > 1.0
    logged = [r.getMessage() for r in caplog.records if "calls waited" in r.getMessage()]
    assert logged and all("sk-test" not in m for m in logged) and "(stub)" in logged[0]


def test_the_limit_survives_copies_and_tracing_and_tokens_settle(stub):
    spec = ModelSpec("stub", "openai/stub-small", provider="openai-compatible", api_base=stub.base_url, tpm=6000,
                     max_tokens=100)
    lm = build_lm(spec, cache=False)
    recorded = []

    class Recording(Step):  # a trace step that keeps what the writer would get
        name = "trace"

        def end(self, call):
            recorded.append(call.entry)

    traced = with_step(copy.copy(lm), Recording())
    for each in (lm.copy(temperature=0.5), copy.copy(lm), traced):
        assert steps_of(each)["limit"] == steps_of(lm)["limit"]
        each("The aim was to assess it.")
    assert recorded and recorded[0]["usage"]["total_tokens"] > 0  # tracing still sees DSPy's history entry
    stats = limiter().stats()[limit_key(spec)]
    assert stats["calls"] == 3 and stats["tpm"] == 6000
    # Each call reserved ~106 tokens (1.06 s) and settled to the stub's few: the bucket's debt is well under 3 s.
    bucket = limiter().store._buckets[limit_key(spec)]
    assert bucket.tat_tok - time.monotonic() < 1.0


def test_async_calls_wait_their_turn_too(stub):
    import asyncio

    spec = ModelSpec("stub", "openai/stub-small", provider="openai-compatible", api_base=stub.base_url, rpm=120)
    lm = build_lm(spec, cache=False)

    async def two() -> float:
        started = time.monotonic()
        await asyncio.gather(lm.acall("The aim was one."), lm.acall("The aim was two."))
        return time.monotonic() - started

    assert asyncio.run(two()) >= 0.5  # the second call waited its 0.5 s
    assert limiter().stats()[limit_key(spec)]["waits"] == 1


def test_a_model_without_limits_is_not_wrapped(stub):
    lm = build_lm(ModelSpec("s", "openai/stub-small", provider="openai-compatible", api_base=stub.base_url))
    assert "limit" not in steps_of(lm)
