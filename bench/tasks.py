"""Every shipped task end to end against the stub server (tests/stub_tasks.py), as a user runs it from the command
line: GEPA on the student ``stub-small`` with ``stub-large`` reflecting (and judging ``rewrite``), then MIPROv2 on
one task. Prints, per task, the metric, the test score before -> after with its interval, the verdict, the metric
calls and the spend (the stub is priced like a small hosted model), and the wall time.

Run: .venv/bin/python bench/tasks.py [--budget 200] [--tasks extract,qa]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, StubProcess

# USD per 1M tokens (in, out): the student priced like a small hosted model, the reflection model like a large one.
PRICES = {"stub-small": ("0.07", "0.30"), "stub-large": ("3.00", "15.00")}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def optimize(url: str, task: str, budget: int, optimizer: str, data_dir: str) -> tuple[int, float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEPA_STUDIO_DATA_DIR": data_dir, "GEPA_STUDIO_TRACES": "on"}
    for name, (price_in, price_out) in PRICES.items():  # the two stub models in this data dir's catalog, priced
        _cli(env, "models", "add", name, f"openai/{name}", "--api-base", url, "--price-in", price_in,
             "--price-out", price_out, "--replace")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "core", "optimize", "--task", task, "--optimizer", optimizer,
                          "--student", "stub-small", "--reflection", "stub-large",
                          "--budget", str(budget) if optimizer == "gepa" else "light", "--threads", "4"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    return out.returncode, time.perf_counter() - start, out.stdout + out.stderr


def figures(data_dir: str) -> dict:
    """The newest optimization's figures and its verdict, read from the store the CLI wrote."""
    from core.analytics.charts.scores import metric_name
    from core.analytics.verdict import verdict
    from core.config.settings import load_settings
    from core.evaluation.baseline import run_dir
    from core.evaluation.records import read_records
    from core.tracking.store import RunStore

    store = RunStore(load_settings(__import__("pathlib").Path(data_dir)))
    runs = store.list_runs(kind="optimization")
    run = store.get_run(runs["run_id"].iloc[0]).data
    m, tags = run.metrics, run.tags
    records = [read_records(run_dir(store, tags[f"studio.{p}_eval_run_id"]) / "records.jsonl")
               for p in ("original", "optimized")]
    v = verdict(records[0], records[1], "the original", "The optimized program",
                metric_name(tags.get("studio.metric", "score")))
    evals = {p: store.get_run(tags[f"studio.{p}_eval_run_id"]).data.metrics for p in ("original", "optimized")}
    return {"metric": tags.get("studio.metric"), "before": m.get("original_test_score"),
            "after": m.get("optimized_test_score"), "ci": (evals["optimized"]["score_ci_low"],
                                                           evals["optimized"]["score_ci_high"]),
            "calls": m.get("metric_calls", m.get("metric_calls_used")), "spend": m.get("spent_usd"),
            "sentence": v.sentence}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--tasks", default="extract,qa,arithmetic,tags,rewrite")
    args = parser.parse_args()
    plan = [(t, "gepa") for t in args.tasks.split(",")] + [("qa", "miprov2")]
    with StubProcess(0.0, responder="tasks") as stub:
        for task, optimizer in plan:
            data_dir = tempfile.mkdtemp(prefix=f"bench-task-{task}-")
            code, wall, out = optimize(stub.base_url, task, args.budget, optimizer, data_dir)
            if code != 0:
                print(f"{task} · {optimizer}: FAILED (exit {code}): {out[-800:]}", flush=True)
                continue
            f = figures(data_dir)
            print(f"{task} · {optimizer} · {f['metric']}: test score {f['before']:.3f} -> {f['after']:.3f} "
                  f"(95 % CI {f['ci'][0]:.3f} to {f['ci'][1]:.3f}); {int(f['calls'] or 0)} metric calls; spend "
                  f"${(f['spend'] or 0):.4f}; {wall:.1f} s\n  {f['sentence']}", flush=True)


if __name__ == "__main__":
    main()
