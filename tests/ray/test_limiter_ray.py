"""The cluster-wide limiter on the real Ray head: four Ray workers (four processes) call the stub server through
``build_lm`` with one requests-per-minute limit, booked on one named detached actor; the stub's own request times
give the rate all four reached together."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from core.lm.limits import achieved_rate
from tests.stub_server import StubLLMServer, keyword_classifier

ROOT = Path(__file__).resolve().parents[2]
RPM, WORKERS, CALL_S = 600, 4, 8.0


def test_the_ray_limiter_holds_rpm_across_four_ray_workers(ray_address):
    import ray

    from core.lm.limits.stores import ACTOR_NAMESPACE, kill_actor

    times: dict[int, list[float]] = {i: [] for i in range(WORKERS)}

    def responder(model, messages, body):
        found = re.search(r"Worker (\d+) ", str(messages[-1].get("content")))
        if found:
            times[int(found.group(1))].append(time.time())
        return keyword_classifier(model, messages, body)

    name = f"gepa-studio-limiter-test-{uuid.uuid4().hex[:8]}"
    env = {"GEPA_STUDIO_LIMITER": "ray", "GEPA_STUDIO_LIMITER_NAME": name, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "GEPA_STUDIO_TRACES": "off"}
    runtime_env = {"py_modules": [str(ROOT / "core")], "env_vars": env}
    gate_class, calls = worker_parts()
    t0 = time.time()
    ray.init(address="auto", namespace=ACTOR_NAMESPACE, runtime_env=runtime_env, logging_level="WARNING",
             log_to_driver=False)
    try:
        with StubLLMServer(responder=responder) as server:
            gate = ray.remote(num_cpus=0)(gate_class).remote()
            task = ray.remote(num_cpus=0, max_retries=0)(calls)
            results = ray.get([task.remote(i, server.base_url, gate) for i in range(WORKERS)], timeout=300)
            stats = ray.get(ray.get_actor(name, namespace=ACTOR_NAMESPACE).stats.remote(), timeout=30)
    finally:
        if ray.is_initialized():
            kill_actor(name)
            ray.shutdown()
    assert_one_shared_rate(results, times, stats, t0)


def worker_parts() -> tuple[type, Callable[..., dict]]:
    """The gate and what each Ray worker runs, made inside a function so that cloudpickle ships them by value (the
    workers are given core, not tests)."""

    class Gate:  # the four workers start calling together, once each has imported DSPy and built its LM
        def __init__(self) -> None:
            self.arrived = 0

        def arrive(self) -> int:
            self.arrived += 1
            return self.arrived

        def count(self) -> int:
            return self.arrived

    def calls(i: int, base_url: str, gate) -> dict:
        import ray as ray_

        from core.lm.limits import limiter
        from core.lm.models import ModelSpec, build_lm

        spec = ModelSpec("stub", "openai/stub-small", provider="openai-compatible", api_base=base_url, rpm=RPM,
                         max_tokens=20)
        lm = build_lm(spec, cache=False)
        kind = limiter().kind
        limiter().stats()  # reach the actor before the clock starts
        ray_.get(gate.arrive.remote())
        waited = time.time()
        while ray_.get(gate.count.remote()) < WORKERS and time.time() - waited < 120:
            time.sleep(0.05)
        began = time.time()
        until, made = began + CALL_S, []

        def thread(t: int) -> None:  # two callers per worker: a late call never leaves the bucket idle
            n = 0
            while time.time() < until:
                lm(f"Worker {i} call {t}-{n}: the aim was to assess it.")
                n += 1
            made.append(n)

        threads = [threading.Thread(target=thread, args=(t,)) for t in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"kind": limiter().kind, "kind_at_start": kind, "calls": sum(made), "pid": os.getpid(), "began": began}

    return Gate, calls


def assert_one_shared_rate(results: list[dict], times: dict[int, list[float]], stats: dict, t0: float) -> None:
    """Every worker booked on the one Ray limiter, and together they held its rate (the stub's request times)."""
    assert [r["kind"] for r in results] == ["ray"] * WORKERS, results  # no worker fell back to its own store
    assert len({r["pid"] for r in results}) == WORKERS
    start = max(ts[0] for ts in times.values())  # the window in which all four were calling
    end = min(ts[-1] for ts in times.values())
    assert end - start > CALL_S * 0.6, (start, end)
    rate = achieved_rate([t for ts in times.values() for t in ts], start, end)
    print(f"ray limiter: {rate:.1f} calls/min over {end - start:.2f} s with {WORKERS} workers, set {RPM} "
          f"(ratio {rate / RPM:.3f}); calls per worker {[r['calls'] for r in results]}; "
          f"workers ready after {max(r['began'] for r in results) - t0:.1f} s")
    assert 0.90 * RPM <= rate <= 1.10 * RPM
    assert all(len(ts) >= 10 for ts in times.values())  # every worker got its share, none starved
    (bucket,) = stats.values()
    assert bucket["rpm"] == RPM and bucket["calls"] >= sum(r["calls"] for r in results) and bucket["waits"] > 0
