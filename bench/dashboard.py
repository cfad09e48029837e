"""Dashboard at scale: seed a store with 10,000 runs, check that every run is listed, time Compare and History.

Times (1) the run table alone (``RunStore.list_runs``: every run, none cut at a page or a cap), (2) the Compare
and History pages under Streamlit's AppTest (app.py + the page, as a warm server runs them): *cold* with every
Streamlit cache cleared (the run table read from the store), *warm* as the second render of that session
(``ui.cache`` warm), and, for information, each page's first render in the process (imports included), and
(3) the cold start of ``streamlit run app.py`` until /_stcore/health answers. Targets: pages < 2 s warm and
< 5 s cold, cold start < 5 s. History must say it lists all the runs. The last line is the worst ratio to target.

The runs look like the studio's own (the same tags, params and ~30 metrics per evaluation). The newest 60 are
written through ``RunStore`` (MLflow's client), evaluations with their records and per-class tables, so the pages
find what they read; the older ones in batches of 1,000 runs per transaction through MLflow's own SQLAlchemy
models (its client writes 3 transactions per run: ~40 ms a run here, 7 min for 10,000).
Run: .venv/bin/python bench/dashboard.py [n_runs]
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from _common import ROOT

PAGE_WARM_S, PAGE_COLD_S, COLD_START_S = 2.0, 5.0, 5.0
MODELS = ["gpt-oss-20b", "gpt-oss-120b", "claude-sonnet-4", "llama3.1-8b", "qwen3-4b"]
FAILURE_KINDS = ("rate_limit", "server_error", "timeout", "unreachable", "auth", "not_found", "config", "parse",
                 "other")
THROUGH_CLIENT = 60  # the newest runs, written through RunStore with their artifacts
LABELS = ["BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"]
BATCH = 1000


def _eval_metrics(rng: random.Random) -> dict[str, float]:
    n, acc = 60, rng.uniform(0.3, 0.9)
    failed = rng.choice([0, 0, 0, 1, 4])
    cost = rng.uniform(0.0005, 0.05)
    return {"n": n, "correct": round(acc * n), "accuracy": acc, "accuracy_ci_low": max(0.0, acc - 0.12),
            "accuracy_ci_high": min(1.0, acc + 0.12), "failed": failed, "failure_rate": failed / n,
            **{f"failed_{k}": float(failed if k == "rate_limit" else 0) for k in FAILURE_KINDS},
            "answered": n - failed, "accuracy_answered": acc, "macro_f1": acc - 0.03,
            "input_tokens": 9000.0, "output_tokens": 600.0, "cost_usd": cost, "spent_usd": cost,
            "cost_per_1k": cost / n * 1000, "p50_latency_s": rng.uniform(0.2, 3), "p95_latency_s": 4.0,
            "errors": failed, "parse_failures": 0.0, "cached": 0.0, "lm_calls": float(n), "complete": 1.0}


def _spec_params(model: str, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in {
        "model": f"databricks/{model}", "model_name": model, "provider": "databricks", "temperature": 0.0,
        "max_tokens": 1024, "timeout_s": 60, "num_retries": 3, "price_input_per_m": 0.07,
        "price_output_per_m": 0.3, "price_source": "litellm"}.items()}


def _groups(n: int, rng: random.Random):
    """(kind, task, run_name, tags, params, metrics, status, parent index or None) of n runs, oldest first: baselines
    of 5 models (Predict and CoT), optimizations (finished, capped, cancelled, failed) with their two evaluations."""
    made = 0
    while made < n:
        model, module = rng.choice(MODELS), rng.choice(["predict", "predict", "cot"])
        common = {"studio.model": model, "studio.module": module, "studio.started_by": "bench"}
        if rng.random() < 0.3 and made + 3 <= n:
            outcome = rng.choice(["FINISHED", "FINISHED", "FINISHED", "capped", "cancelled", "FAILED"])
            reflection = rng.choice(MODELS)
            tags = {**common, "studio.program": "gepa", "studio.reflection_model": reflection}
            metrics = {"optimization_cost_usd": 1.2, "student_cost_usd": 0.3, "reflection_cost_usd": 0.9,
                       "best_val_score": rng.uniform(0.4, 0.9), "metric_calls_used": 400.0, "iterations": 20.0,
                       "candidates": 6.0, "failed_student_calls": 0.0, "failed_reflection_calls": 0.0}
            params = {**_spec_params(model, "student_"), **_spec_params(reflection, "reflection_"),
                      "budget": rng.choice(["light", "medium", "400 metric calls"]), "module": module,
                      "n_train": 30, "n_val": 30, "n_test": 60, "seed": 0, "feedback": "rules"}
            status = {"capped": "KILLED", "cancelled": "KILLED"}.get(outcome, outcome)
            if outcome in ("capped", "cancelled"):
                tags["studio.stop_reason"] = "spending cap $0.0500 reached" if outcome == "capped" else "cancelled"
            run_name = f"GEPA · {model} ← {reflection}"
            if outcome != "FINISHED":
                yield "optimization", "pubmed", run_name, tags, params, metrics, status, None
                made += 1
                continue
            original, optimized = _eval_metrics(rng), _eval_metrics(rng)
            metrics.update(original_test_accuracy=original["accuracy"], optimized_test_accuracy=optimized["accuracy"],
                           original_cost_per_1k=original["cost_per_1k"], optimized_cost_per_1k=optimized["cost_per_1k"])
            yield "optimization", "pubmed", run_name, tags, params, metrics, status, None
            for program, m in (("original", original), ("optimized", optimized)):
                yield ("evaluation", "pubmed", f"{model} · {program}", {**common, "studio.program": program},
                       {**_spec_params(model), "task": "pubmed", "n_test": 60}, m, "FINISHED", made)
            made += 3
        else:
            yield ("baseline", "pubmed", f"{model} · original", {**common, "studio.program": "original"},
                   {**_spec_params(model), "task": "pubmed", "n_test": 60, "threads": 8, "cache": True},
                   _eval_metrics(rng), "FINISHED", None)
            made += 1


def seed(settings, n: int) -> None:
    """n runs in the store of ``settings`` (see the module docstring), one second apart, newest last."""
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from sqlalchemy import insert

    from core.tracking.store import RunStore

    store = RunStore(settings)
    exp_id = store.experiment_id("pubmed")
    sql = store.client._tracking_client.store  # MLflow's SqlAlchemyStore (a local SQLite store)
    root = settings.artifact_root / "pubmed"
    t0 = int(time.time() * 1000) - n * 1000
    ids: list[str] = []
    rows: dict[str, list[dict[str, Any]]] = {"runs": [], "tags": [], "params": [], "metrics": []}

    def flush() -> None:
        with sql.ManagedSessionMaker() as session:
            session.execute(insert(SqlRun.__table__), rows["runs"])
            session.execute(insert(SqlTag.__table__), rows["tags"])
            session.execute(insert(SqlParam.__table__), rows["params"])
            session.execute(insert(SqlMetric.__table__), rows["metrics"])
            session.execute(insert(SqlLatestMetric.__table__), rows["metrics"])
        for v in rows.values():
            v.clear()

    for i, (kind, task, name, tags, params, metrics, status, parent) in enumerate(_groups(n, random.Random(0))):
        start = t0 + i * 1000
        if i >= n - THROUGH_CLIENT:
            if rows["runs"]:
                flush()
            rid = store.start_run(kind, task, run_name=name, params=params, tags=tags,  # type: ignore[arg-type]
                                  parent_run_id=ids[parent] if parent is not None else None)
            store.log_metrics(rid, metrics)
            if kind != "optimization":
                store.log_artifacts(rid, _artifacts(metrics["accuracy"], random.Random(i)))
            store.end_run(rid, status)
            ids.append(rid)
            continue
        rid = uuid.uuid4().hex
        ids.append(rid)
        rows["runs"].append(dict(
            run_uuid=rid, name=name, source_type="UNKNOWN", source_name="", entry_point_name="", user_id="bench",
            status=status, start_time=start, end_time=start + 900, deleted_time=None, source_version="",
            lifecycle_stage="active", artifact_uri=(root / rid / "artifacts").as_uri(), experiment_id=int(exp_id)))
        all_tags = {**tags, "studio.kind": kind, "studio.task": task, "mlflow.runName": name, "mlflow.user": "bench",
                    **({"mlflow.parentRunId": ids[parent]} if parent is not None else {})}
        rows["tags"] += [dict(key=k, value=str(v), run_uuid=rid) for k, v in all_tags.items()]
        rows["params"] += [dict(key=k, value=str(v), run_uuid=rid) for k, v in params.items()]
        rows["metrics"] += [dict(key=k, value=float(v), timestamp=start + 900, step=0, is_nan=False, run_uuid=rid)
                            for k, v in metrics.items()]
        if len(rows["runs"]) >= BATCH:
            flush()
    if rows["runs"]:
        flush()


def _artifacts(accuracy: float, rng: random.Random) -> dict[str, Any]:
    """records.csv and per_label.csv of an evaluation on the same 60 examples (as Compare's paired test needs)."""
    import pandas as pd

    from core.analytics.stats import per_label_metrics

    gold = [LABELS[i % len(LABELS)] for i in range(60)]
    pred = [g if rng.random() < accuracy else rng.choice(LABELS) for g in gold]
    records = pd.DataFrame({"idx": range(60), "text": [f"sentence {i}" for i in range(60)], "gold": gold,
                            "predicted": pred, "correct": [g == p for g, p in zip(gold, pred, strict=True)],
                            "outcome": ["correct" if g == p else "wrong" for g, p in zip(gold, pred, strict=True)]})
    return {"records.csv": records, "per_label.csv": per_label_metrics(gold, pred, LABELS)}


def check_listed(settings, n: int) -> float:
    """Every seeded run is in the run table (none cut at a page or a cap); returns the seconds it took."""
    from core.tracking.store import RunStore

    start = time.perf_counter()
    runs = RunStore(settings).list_runs()
    secs = time.perf_counter() - start
    if len(runs) != n or runs["run_id"].nunique() != n:
        raise SystemExit(f"the run table lists {len(runs)} runs ({runs['run_id'].nunique()} distinct), not {n}")
    return secs


def time_pages(pages: list[str], n: int) -> dict[str, tuple[float, float, float]]:
    """(first, cold, warm) seconds of each page as a server runs it: app.py (routing, sidebar) then the page.
    first: its first render in this process (imports included); cold: again with every Streamlit cache cleared
    (the run table read from the store); warm: the second render of that session (``ui.cache`` warm)."""
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False  # AppTest would start in legacy pages/ mode (see ui.routing)

    PagesManager.__init__ = init
    # A warm server discovered Streamlit's components once at start-up (~1 s of package-metadata scanning here):
    # do that once before timing, so the first timed page does not carry it.
    AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    out = {}
    for page in pages:
        times = []
        for fresh in (True, True, False):
            if fresh:
                st.cache_data.clear()
                st.cache_resource.clear()
                at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).switch_page(page)
            start = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - start)
            if at.exception:
                raise SystemExit(f"{page} raised: {at.exception[0].message}")
        out[page] = (times[0], times[1], times[2])
        if not at.title or at.title[0].value != Path(page).stem.title():
            raise SystemExit(f"{page} did not render its own page (title {[t.value for t in at.title]})")
        if page.endswith("history.py"):
            said = " ".join(str(c.value) for c in at.caption)
            if f"{n:,} of {n:,} runs" not in said:
                raise SystemExit(f"History does not say it lists all {n:,} runs: {said[:300]}")
    return out


def cold_start() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.headless",
                             "true", "--server.port", str(port), "--browser.gatherUsageStats", "false"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < 60:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        return float("inf")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GEPA_STUDIO_DATA_DIR"] = str(Path(tmp) / "studio")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'studio' / 'mlflow.db'}"
        from core.config.settings import load_settings

        settings = load_settings().ensure()
        t = time.perf_counter()
        seed(settings, n)
        print(f"seeded {n:,} runs in {time.perf_counter() - t:.1f} s (the newest {THROUGH_CLIENT} through MLflow's "
              f"client with artifacts, the rest in batches of {BATCH:,})")
        cold_list = check_listed(settings, n)
        warm_list = check_listed(settings, n)
        print(f"run table: all {n:,} runs listed; list_runs {cold_list:.2f} s cold, {warm_list:.2f} s again")
        ratios = []
        for page, (first, cold, warm) in time_pages(["pages/compare.py", "pages/history.py"], n).items():
            print(f"{page}: cold {cold:.2f} s (target {PAGE_COLD_S:.0f} s), warm {warm:.2f} s (target "
                  f"{PAGE_WARM_S:.0f} s); first render in this process, imports included: {first:.2f} s")
            ratios += [cold / PAGE_COLD_S, warm / PAGE_WARM_S]
        start = cold_start()
        print(f"cold start to /_stcore/health: {start:.2f} s (target {COLD_START_S:.0f} s)")
        ratios.append(start / COLD_START_S)
        print(f"worst ratio to target: {max(ratios):.3f}")


if __name__ == "__main__":
    main()
