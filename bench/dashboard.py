"""Dashboard at scale: seed a store with 1,000 runs, then time what the Compare and History pages do.

Times (1) the pages themselves under Streamlit's AppTest (data loading + figure building + rendering,
cold caches), (2) the core calls alone, and (3) the cold start of `streamlit run app.py` until
/_stcore/health answers. Targets: < 2 s per page at 1,000 runs, < 5 s cold start. The last line is the
worst ratio to its target.
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
from pathlib import Path

from _common import ROOT

PAGE_TARGET_S, COLD_TARGET_S = 2.0, 5.0


def seed(settings, n: int) -> None:
    """n runs: baselines of 5 models, and optimizations with their two evaluation runs."""
    from core.store import TAG, RunStore

    store = RunStore(settings)
    rng = random.Random(0)
    models = ["gpt-oss-20b", "gpt-oss-120b", "claude-sonnet-4", "llama3.1-8b", "qwen3-4b"]
    made = 0
    while made < n:
        model = rng.choice(models)
        kind = rng.choice(["baseline", "baseline", "optimization"])
        acc = rng.uniform(0.4, 0.9)
        metrics = {"accuracy": acc, "accuracy_ci_low": acc - 0.1, "accuracy_ci_high": min(1.0, acc + 0.1),
                   "macro_f1": acc - 0.02, "n": 50, "cost_usd": rng.uniform(0, 0.05),
                   "cost_per_1k": rng.uniform(0, 1.0), "p50_latency_s": rng.uniform(0.2, 3),
                   "input_tokens": 7000, "output_tokens": 500}
        if kind == "optimization" and made + 3 <= n:
            rid = store.start_run("optimization", "pubmed", run_name=f"GEPA {model}",
                                  tags={f"{TAG}model": model, f"{TAG}program": "gepa"})
            store.log_metrics(rid, {"optimization_cost_usd": 1.2, "student_cost_usd": 0.3, "reflection_cost_usd": 0.9,
                                    "best_val_score": acc, "original_test_accuracy": acc - 0.1,
                                    "optimized_test_accuracy": acc})
            for program in ("original", "optimized"):
                cid = store.start_run("evaluation", "pubmed", run_name=f"{model} · {program}", parent_run_id=rid,
                                      tags={f"{TAG}model": model, f"{TAG}program": program})
                store.log_metrics(cid, metrics)
                store.end_run(cid)
            store.end_run(rid)
            made += 3
        else:
            rid = store.start_run("baseline", "pubmed", run_name=f"{model} · original",
                                  tags={f"{TAG}model": model, f"{TAG}program": "original"})
            store.log_metrics(rid, metrics)
            store.end_run(rid)
            made += 1


def time_pages(pages: list[str]) -> dict[str, float]:
    """Each page as a warm server runs it: app.py (routing, sidebar) then the page, with cold caches."""
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
        st.cache_data.clear()
        st.cache_resource.clear()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        start = time.perf_counter()
        at.switch_page(page).run()
        out[page] = time.perf_counter() - start
        if at.exception:
            raise SystemExit(f"{page} raised: {at.exception[0].message}")
        if not at.title or at.title[0].value != Path(page).stem.title():
            raise SystemExit(f"{page} did not render its own page (title {[t.value for t in at.title]})")
    return out


def time_core() -> dict[str, float]:
    from core.analytics import charts
    from core.settings import load_settings
    from core.store import RunStore

    store = RunStore(load_settings())
    t = time.perf_counter()
    runs = store.list_runs()
    load = time.perf_counter() - t
    evals = runs[runs["kind"].isin(["baseline", "evaluation"])].copy()
    evals["label"] = evals["model"] + " · " + evals["program"]
    evals["ci_low"], evals["ci_high"] = evals["accuracy_ci_low"], evals["accuracy_ci_high"]
    t = time.perf_counter()
    charts.accuracy_bars(evals.drop_duplicates("label"))
    charts.accuracy_vs_cost(evals)
    figs = time.perf_counter() - t
    return {"list_runs (all)": load, "figures": figs, "runs": float(len(runs))}


def cold_start() -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"], cwd=ROOT,
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
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GEPA_STUDIO_DATA_DIR"] = str(Path(tmp) / "studio")
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'studio' / 'mlflow.db'}"
        from core.settings import load_settings

        t = time.perf_counter()
        seed(load_settings().ensure(), n)
        print(f"seeded {n} runs in {time.perf_counter() - t:.1f} s")
        core_times = time_core()
        print(f"core: list_runs {core_times['list_runs (all)']:.2f} s for {int(core_times['runs'])} runs, "
              f"figures {core_times['figures']:.2f} s")
        pages = time_pages(["pages/compare.py", "pages/history.py"])
        for page, secs in pages.items():
            print(f"{page}: {secs:.2f} s (target {PAGE_TARGET_S:.0f} s)")
        cold = cold_start()
        print(f"cold start to /_stcore/health: {cold:.2f} s (target {COLD_TARGET_S:.0f} s)")
        ratios = [s / PAGE_TARGET_S for s in pages.values()] + [cold / COLD_TARGET_S]
        print(f"worst ratio to target: {max(ratios):.3f}")


if __name__ == "__main__":
    main()
