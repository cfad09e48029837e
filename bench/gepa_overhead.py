"""GEPA overhead: max_metric_calls=200 against a stub server with 50 ms per call.

Total LM time is (calls the server answered) x latency; divided by the concurrency (threads, set to
the reflection minibatch size, since GEPA's minibatch evaluations cannot use more) it is the floor.
Prints the floor, the wall time of GEPA's optimization loop, where the rest went (waves of calls
that GEPA runs one after another, and per-wave overhead), and their ratio last (target <= 1.5).
Runs with MLflow traces on (the default: one trace per LM call; the target is for it), then again with traces off.
Then measures what a resume saves: the same job killed (SIGKILL) halfway and resumed, against a fresh run.
Run: .venv/bin/python bench/gepa_overhead.py
"""

from __future__ import annotations

import math
import os
import signal
import tempfile
import time
from pathlib import Path

from _common import set_traces

BUDGET, LATENCY, THREADS = 200, 0.05, 3


class Timer:
    """GEPA callback: batch sizes, reflection calls, and the loop's start and end."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.proposals = 0
        self.t0 = self.t1 = 0.0

    def on_optimization_start(self, event):
        self.t0 = time.perf_counter()

    def on_optimization_end(self, event):
        self.t1 = time.perf_counter()

    def on_evaluation_start(self, event):
        self.batches.append(int(event["batch_size"]))

    def on_proposal_start(self, event):
        self.proposals += 1


def setup(tmp: Path, url: str):
    from core.config.settings import load_settings
    from core.lm.models import openai_compatible
    from core.optimize import OptimizeConfig
    from core.tasks import SampleSpec, TaskRef
    from tests.scenario import write_csv

    settings = load_settings(tmp / "studio").ensure()
    ref = TaskRef(kind="file", source=str(write_csv(tmp / "scenario.csv", 20)), name="bench")
    config = OptimizeConfig(
        task_ref=ref, sample=SampleSpec(4, 3, 4, seed=1), auto=None, max_metric_calls=BUDGET, threads=THREADS,
        student=openai_compatible("stub-small", "stub-small", url, input_price_per_m=0.07, output_price_per_m=0.3),
        reflection=openai_compatible("stub-large", "stub-large", url, input_price_per_m=3, output_price_per_m=15),
        cache=False, use_merge=False, reflection_minibatch_size=THREADS)
    return settings, config


def overhead(tmp: Path, stub) -> float:
    from core.optimize import run_optimization
    from core.tracking.store import RunStore

    settings, config = setup(tmp, stub.base_url)
    arrivals: list[float] = []
    inner = stub.responder

    def timed(model, messages, body):
        arrivals.append(time.perf_counter())
        return inner(model, messages, body)

    stub.responder = timed
    timer = Timer()
    start = time.perf_counter()
    result = run_optimization(config, RunStore(settings), log_dir=tmp / "gepa", extra_callbacks=[timer])
    total = time.perf_counter() - start
    stub.responder = inner
    loop = timer.t1 - timer.t0
    calls = [t for t in arrivals if timer.t0 <= t <= timer.t1]
    floor = len(calls) * LATENCY / THREADS
    waves = 0
    last = -1.0
    for t in sorted(calls):  # calls that start together form one wave
        if t - last > LATENCY / 2:
            waves += 1
            last = t
    print(f"metric calls used: {result.progress['metric_calls_used']} (budget {BUDGET}); LM calls in the loop: "
          f"{len(calls)} ({timer.proposals} reflection); threads: {THREADS}")
    print(f"test accuracy original -> optimized: {result.original_accuracy:.2f} -> {result.optimized_accuracy:.2f}")
    print(f"whole job incl. loading, MLflow and the two test evaluations: {total:.2f} s")
    print(f"total LM time / concurrency: {len(calls)} x {LATENCY:.3f} s / {THREADS} = {floor:.2f} s")
    print(f"optimization loop wall time: {loop:.2f} s")
    print(f"where the rest goes: {waves} sequential waves of calls (perfect packing would be "
          f"{math.ceil(len(calls) / THREADS)}), i.e. {waves * LATENCY:.2f} s of waiting; "
          f"{(loop - waves * LATENCY) / max(waves, 1) * 1000:.1f} ms of CPU per wave (adapter, GEPA bookkeeping, "
          f"our callbacks)")
    return loop / floor


def resume_saving(tmp: Path, url: str) -> None:
    from core.jobs import JobManager

    def student_calls(log: Path) -> int:
        return sum(1 for line in log.read_text().splitlines() if '"stub-small"' in line)

    settings, config = setup(tmp, url)
    os.environ["GEPA_STUDIO_DATA_DIR"] = str(settings.data_dir)
    manager = JobManager(settings)
    fresh = manager.submit_optimization(config)
    manager.wait(fresh, timeout=600)
    fresh_calls = manager.progress(fresh)["metric_calls_used"]
    job = manager.submit_optimization(config)
    while manager.progress(job).get("metric_calls_used", 0) < BUDGET // 2:
        time.sleep(0.05)
    killed_at = manager.progress(job)["metric_calls_used"]
    os.killpg(manager.get(job).pid, signal.SIGKILL)
    time.sleep(0.5)
    state = manager.get(job).state
    saved = manager.progress(job)["metric_calls_used"]
    manager.resume(job)
    manager.wait(job, timeout=600)
    final = manager.progress(job)
    after = final["metric_calls_used"] - final["resumed_from_metric_calls"]
    print(f"resume: killed at {killed_at} metric calls (state {state}); the resumed attempt spent {after} "
          f"metric calls to reach {final['metric_calls_used']}; a fresh run spent {fresh_calls}: "
          f"saving {1 - after / fresh_calls:.0%} (last saved GEPA state at {saved})")


def main() -> None:
    from tests.stub_server import StubLLMServer, gepa_responder

    with StubLLMServer(responder=gepa_responder, latency_s=LATENCY) as stub, tempfile.TemporaryDirectory() as tmp:
        set_traces(False)
        print("-- traces off")
        off = overhead(Path(tmp) / "off", stub)
        set_traces(True)
        print("-- traces on")
        ratio = overhead(Path(tmp) / "a", stub)
        resume_saving(Path(tmp) / "b", stub.base_url)
        print(f"ratio wall/(LM time / concurrency), traces off: {off:.3f}")
        print(f"ratio wall/(LM time / concurrency): {ratio:.3f} (traces on; target <= 1.5)")


if __name__ == "__main__":
    main()
