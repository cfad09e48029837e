"""What MLflow tracing costs: the same evaluation run (an MLflow run on a fresh SQLite store, against a stub server
in its own process) with ``GEPA_STUDIO_TRACES`` on and off.

Cases: 200 examples at 1 s per call (a hosted model), at 200 ms (a fast one) and at 20 ms (a local server: the
worst case, where writing the traces, not the model, is the bound); 8 threads each. The wall time runs until the
run has ended, its traces written (the run flushes them before it ends).
Prints per case: wall on/off and their ratio, traces per run, and the store's growth in bytes per trace
(SQLite database and artifacts, traced run minus untraced run).
Run: .venv/bin/python bench/tracing.py [--quick]  (--quick: 60 examples)
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import StubProcess, sentences

CASES = ((200, 1.0, 8), (200, 0.2, 8), (200, 0.02, 8))


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_once(n: int, stub_url: str, traces: str) -> tuple[float, int, int]:
    """(wall seconds, traces of the run, bytes of the data dir) of one evaluation run with tracing ``traces``."""
    from core.config.settings import load_settings
    from core.evaluation.baseline import run_evaluation
    from core.evaluation.evaluate import EvalOptions
    from core.lm.models import openai_compatible
    from core.program.program import make_program
    from core.tasks import table_task
    from core.tracking.store import RunStore
    from core.tracking.tracing import trace_counts

    os.environ["GEPA_STUDIO_TRACES"] = traces
    data = Path(tempfile.mkdtemp(prefix=f"bench-tracing-{traces}-"))
    atexit.register(shutil.rmtree, data, ignore_errors=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{data / 'mlflow.db'}"
    store = RunStore(load_settings(data))
    df = sentences(n)
    task = table_task(df, text_column="description", label_column="target", name="bench")
    spec = openai_compatible("stub", "stub-small", stub_url, input_price_per_m=0.07, output_price_per_m=0.3)
    start = time.perf_counter()
    run_id, result = run_evaluation(store, task, spec, make_program(task), df,
                                    options=EvalOptions(threads=8, cache=False))
    wall = time.perf_counter() - start
    assert result.metrics["n"] == n and not result.metrics["failed"], result.metrics
    return wall, sum(trace_counts(store, run_id).values()), folder_bytes(data)


def main() -> None:
    cases = CASES if "--quick" not in sys.argv else tuple((60, lat, th) for _, lat, th in CASES)
    for n, latency, threads in cases:
        with StubProcess(latency) as stub:
            run_once(8, stub.base_url, "on")  # warm up: imports, the tracer, a first store
            off_wall, off_traces, off_bytes = run_once(n, stub.base_url, "off")
            on_wall, on_traces, on_bytes = run_once(n, stub.base_url, "on")
        per_trace = (on_bytes - off_bytes) / on_traces if on_traces else float("nan")
        print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads: wall off {off_wall:.2f} s, "
              f"on {on_wall:.2f} s, ratio {on_wall / off_wall:.2f}; traces {on_traces} (off: {off_traces}); "
              f"store +{per_trace / 1024:.1f} KiB per trace ({(on_bytes - off_bytes) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
