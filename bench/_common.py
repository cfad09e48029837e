"""Shared bits of the benchmarks: a stub server in its own process, and real PubMed text when shared/ has it."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "pubmed-rct-sample"

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Traces stay on, as a user gets them: each bench prints its traces-off figure beside (set_traces).
if "DSPY_CACHEDIR" not in os.environ:  # a fresh cache for this bench, removed at exit
    os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="bench-dspy-cache-")
    atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)
sys.path.insert(0, str(ROOT))


def sentences(n: int) -> pd.DataFrame:
    """``n`` labelled sentences: real PubMed RCT text from ../shared when present, else generated ones."""
    path = SHARED_SAMPLE / "eval_sample.csv"
    if path.exists():
        df = pd.read_csv(path)
        reps = -(-n // len(df))
        out = pd.concat([df] * reps, ignore_index=True).head(n).copy()
        out["description"] = [f"{t} [{i}]" for i, t in enumerate(out["description"])]  # unique: no cache hits
        return out
    from tests.scenario import make_table

    return make_table(-(-n // 5)).head(n)


def set_traces(on: bool) -> str:
    """Turn MLflow tracing on or off for the runs that follow; returns "on" or "off"."""
    os.environ["GEPA_STUDIO_TRACES"] = "on" if on else "off"
    return os.environ["GEPA_STUDIO_TRACES"]


def evaluation_run(df: pd.DataFrame, base_url: str, threads: int, *, traces: bool, task: object = None,
                   **spec_kw: object) -> dict:
    """One evaluation run as a user starts it (an MLflow run on a fresh SQLite store, traces ``traces``), after a
    warm-up run of ``threads`` examples: {wall, cpu, metrics, traces (count), run_id, store, data}. ``task``: a task
    beyond classification whose columns ``df`` has (default: classification of description -> target)."""
    import time

    from core.config.settings import load_settings
    from core.evaluation.baseline import run_evaluation
    from core.evaluation.evaluate import EvalOptions
    from core.lm.models import openai_compatible
    from core.program.program import make_program
    from core.tasks import table_task
    from core.tracking.store import RunStore
    from core.tracking.tracing import trace_counts

    set_traces(traces)
    data = Path(tempfile.mkdtemp(prefix=f"bench-{'on' if traces else 'off'}-"))
    atexit.register(shutil.rmtree, data, ignore_errors=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{data / 'mlflow.db'}"
    store = RunStore(load_settings(data))
    task = task or table_task(df, text_column="description", label_column="target", name="bench")
    spec = openai_compatible("stub", "stub-small", base_url, **spec_kw)  # type: ignore[arg-type]
    options = EvalOptions(threads=threads, cache=False)
    run_evaluation(store, task, spec, make_program(task), df.head(threads), options=options)  # warm up
    cpu, start = time.process_time(), time.perf_counter()
    run_id, result = run_evaluation(store, task, spec, make_program(task), df, options=options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    count = sum(trace_counts(store, run_id).values())
    return {"wall": wall, "cpu": cpu, "metrics": result.metrics, "traces": count, "run_id": run_id, "store": store,
            "data": data}


def bare_http_wall(base_url: str, texts: list[str], threads: int) -> float:
    """Wall seconds for the same calls, with the same concurrency, through a bare HTTP client (httpx; no DSPy, no
    studio): what the stub and HTTP alone cost above examples x latency / threads. A warm-up round first."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    url = base_url.rstrip("/") + "/chat/completions"
    with httpx.Client(limits=httpx.Limits(max_connections=threads * 2), timeout=60) as client:
        def call(text: str) -> int:
            return client.post(url, json={"model": "stub-small", "messages": [
                {"role": "user", "content": f"[[ ## description ## ]]\n{text}\n"}]}).status_code

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(call, texts[:threads]))
            start = time.perf_counter()
            codes = list(pool.map(call, texts))
        wall = time.perf_counter() - start
    assert set(codes) == {200}, set(codes)
    return wall


def bare_call_s(base_url: str, calls: int = 40) -> float:
    """The median seconds of one call through a bare HTTP client, one at a time (the stub's latency plus what this
    machine adds to any call: the stub's work, HTTP, waking a sleeping thread)."""
    import statistics
    import time

    import httpx

    url, took = base_url.rstrip("/") + "/chat/completions", []
    with httpx.Client(timeout=60) as client:
        for i in range(calls):
            start = time.perf_counter()
            body = {"model": "stub-small", "messages": [{"role": "user", "content": f"call {i}"}]}
            reply = client.post(url, json=body)
            took.append(time.perf_counter() - start)
            reply.raise_for_status()  # a refused call is no measure of a call
    return statistics.median(took[5:])


class StubProcess:
    """``python -m tests.stub_server LATENCY`` in its own process (so the client's GIL is its own); ``faults``
    (fields of tests.stub_server.Faults) go to it as ``STUB_FAULTS``."""

    def __init__(self, latency_s: float, responder: str = "keyword", faults: dict | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "STUB_RESPONDER": responder}
        env.pop("STUB_FAULTS", None)
        if faults:
            env["STUB_FAULTS"] = json.dumps(faults)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.stub_server", str(latency_s)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        self.port = int(self.base_url.rsplit(":", 1)[1].split("/")[0])

    def __enter__(self) -> "StubProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(5)
