"""Baselines as MLflow runs on a tmp SQLite store, read back; a planted key never reaches the store."""

import os
from pathlib import Path

import pytest

from core.evaluation.baseline import load_run_detail, outcomes_table, resume_evaluation, run_baselines
from core.lm.models import ModelSpec, openai_compatible
from core.tasks import SampleSpec, TaskRef
from tests.scenario import write_csv

SECRET = "sk-planted-secret-a1b2c3d4e5"


@pytest.fixture
def csv_ref(tmp_path):
    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


def test_baselines_are_runs_with_params_metrics_artifacts(stub, store, csv_ref):
    specs = [openai_compatible("small", "stub-small", stub.base_url, input_price_per_m=1.0, output_price_per_m=1.0),
             openai_compatible("broken", "missing-model", stub.base_url)]
    outcomes = run_baselines(store, csv_ref, SampleSpec(3, 0, 5, seed=7), specs, threads=4)
    table = outcomes_table(outcomes)
    assert list(table["model"]) == ["small", "broken"]
    assert table.loc[0, "accuracy"] == 1.0 and table.loc[0, "n"] == 25
    assert "missing-model" in table.loc[1, "error"]
    runs = store.list_runs(kind="baseline")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED", "FAILED"}
    ok = runs[runs["model"] == "small"].iloc[0]
    assert ok["accuracy"] == 1.0 and ok["n"] == 25 and ok["cost_per_1k"] > 0
    detail = load_run_detail(store, ok["run_id"])
    assert detail["params"]["sample_seed"] == "7" and detail["params"]["model"] == "openai/stub-small"
    assert len(detail["records"]) == 25 and detail["records"]["correct"].all()
    assert detail["program"]["module"] == "predict"
    assert detail["prompt"][0]["role"] == "system" and "description" in detail["prompt"][1]["content"]
    assert set(detail["per_label"]["label"]) == {"BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS"}


def test_same_seed_same_test_examples(stub, store, csv_ref):
    spec = openai_compatible("small", "stub-small", stub.base_url)
    run_baselines(store, csv_ref, SampleSpec(2, 0, 4, seed=1), [spec])
    run_baselines(store, csv_ref, SampleSpec(2, 0, 4, seed=1), [spec])
    run_baselines(store, csv_ref, SampleSpec(2, 0, 4, seed=2), [spec])
    prints = [store.get_run(r).data.params["test_fingerprint"] for r in store.list_runs()["run_id"]]
    assert len(set(prints)) == 2 and prints.count(prints[-1]) == 2  # the two seed-1 runs share their examples


def test_planted_api_key_never_reaches_the_store(stub, store, csv_ref, monkeypatch, settings):
    monkeypatch.setenv("STUB_API_KEY", SECRET)
    stub.api_key = SECRET
    spec = ModelSpec("keyed", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_API_KEY",
                     input_price_per_m=1.0, output_price_per_m=1.0)
    ok = run_baselines(store, csv_ref, SampleSpec(2, 0, 3), [spec])
    assert ok[0].result.metrics["accuracy"] == 1.0  # the key was really used
    stub.api_key = "something-else"  # now the provider refuses it: error texts must not echo it either
    bad = run_baselines(store, csv_ref, SampleSpec(2, 0, 3, seed=5), [spec], cache=False)
    assert bad[0].error and SECRET not in bad[0].error
    hits = []
    for top in (settings.data_dir, os.environ["DSPY_CACHEDIR"]):  # the MLflow store, artifacts, records, cache
        for root, _, files in os.walk(top):
            hits += [str(Path(root, n)) for n in files if SECRET.encode() in Path(root, n).read_bytes()]
    assert hits == []


def test_a_stopped_baseline_is_interrupted_and_partial_then_resumes_in_the_same_run(stub, store, csv_ref):
    spec = openai_compatible("small", "stub-small", stub.base_url)
    seen = []
    stopped = run_baselines(store, csv_ref, SampleSpec(2, 0, 5), [spec], threads=1, cache=False,
                            on_record=lambda s, done, total, rec: seen.append(rec), should_stop=lambda: len(seen) >= 7)
    run_id = stopped[0].run_id
    row = store.list_runs().set_index("run_id").loc[run_id]
    assert row["status"] == "INTERRUPTED" and row["partial"] and row["accuracy"] != row["accuracy"]  # no accuracy
    assert store.get_run(run_id).info.status == "KILLED" and row["n"] == len(seen)
    stub.reset()
    _, result = resume_evaluation(store, run_id)
    assert len(stub.chat_requests()) == 25 - len(seen)  # caching is off, yet the kept records are not redone
    assert result.metrics["n"] == 25 and result.metrics["accuracy"] == 1.0
    runs = store.list_runs()
    assert len(runs) == 1 and runs.iloc[0]["status"] == "FINISHED" and not runs.iloc[0]["partial"]
    assert len(store.read_csv(run_id, "records.csv")) == 25


def test_a_cot_baseline_is_recorded_as_cot(stub, store, csv_ref):
    from core.tracking.runs import chart_frame

    spec = openai_compatible("small", "stub-small", stub.base_url)
    run_baselines(store, csv_ref, SampleSpec(1, 0, 1), [spec], module="cot")
    run_baselines(store, csv_ref, SampleSpec(1, 0, 1), [spec])
    runs = store.list_runs()
    assert sorted(runs["module"]) == ["cot", "predict"]
    assert sorted(chart_frame(runs)["label"]) == ["small · CoT", "small · Predict"]


def test_the_run_table_from_sql_matches_mlflows_search_and_pages_through_every_run(store, monkeypatch):
    """list_runs reads a SQL store directly; MLflow's search (a tracking server's path) gives the same table."""
    import subprocess
    import sys

    import pandas as pd

    from core.tracking.store import runs_frame

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ids = [store.start_run("baseline", "alpha", run_name="old", tags={"studio.model": "m"})]  # no module tag
    ids.append(store.start_run("baseline", "alpha", run_name="cot", tags={"studio.model": "m", "studio.module": "cot",
                                                                          "studio.degraded": "true"}))
    ids.append(store.start_run("optimization", "beta", run_name="opt", tags={"studio.reflection_model": "big",
                                                                             "studio.stop_reason": "cancelled"},
                               params={"module": "cot", "budget": "light", "n_test": 10}))
    ids.append(store.start_run("evaluation", "beta", run_name="child", parent_run_id=ids[-1],
                               tags={"studio.pid": str(dead.pid), "studio.host": __import__("socket").gethostname()}))
    store.log_metrics(ids[0], {"accuracy": 0.5, "n": 10})
    store.log_metrics(ids[1], {"accuracy": 0.25, "complete": 0.0})
    store.client.log_metric(ids[1], "accuracy_answered", float("nan"))
    store.log_metrics(ids[2], {"optimization_cost_usd": 0.2})
    for rid in ids[:3]:
        store.end_run(rid, "KILLED" if rid == ids[2] else "FINISHED")
    gone = store.start_run("baseline", "alpha", run_name="deleted")
    store.client.delete_run(gone)

    table = store.list_runs()
    searched = runs_frame(store.search())
    pd.testing.assert_frame_equal(table, searched[table.columns])
    assert list(table["run_id"]) == ids[::-1]  # newest first, the deleted run left out
    row = table.set_index("run_name")
    assert row["module"].to_dict() == {"old": "predict", "cot": "cot", "opt": "cot", "child": "predict"}
    assert row.loc["opt", "budget"] == "light" and row.loc["opt", "reflection_model"] == "big"
    assert row.loc["child", "status"] == "INTERRUPTED" and row.loc["child", "parent_run_id"] == ids[2]
    assert row.loc["cot", "degraded"] and row.loc["cot", "partial"] and pd.isna(row.loc["cot", "accuracy_answered"])
    assert list(store.list_runs(kind="baseline", task="alpha")["run_name"]) == ["cot", "old"]
    assert store.list_runs(job_id="none").empty and len(store.list_runs(max_results=3)) == 3

    monkeypatch.setattr("mlflow.store.tracking.SEARCH_MAX_RESULTS_THRESHOLD", 1)  # one run per page
    assert [r.info.run_id for r in store.search()] == ids[::-1]
    assert len(store.search(max_results=2)) == 2
    monkeypatch.setattr("core.tracking.store.read_summary", lambda *a, **k: None)  # a tracking server: MLflow's search
    pd.testing.assert_frame_equal(store.list_runs(), table)
