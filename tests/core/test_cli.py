"""The CLI as a user runs it: subprocesses against the stub server, leaving runs in a real MLflow store."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.analytics import stats
from core.tracking.store import RunStore
from tests.scenario import write_csv
from tests.stub_server import gepa_responder

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=240):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_baseline_prints_a_table_and_leaves_mlflow_runs(stub, settings, tmp_path):
    csv = write_csv(tmp_path / "s.csv", 12)
    url = stub.base_url
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{url}", f"openai/stub-large@{url}",
                  "--train-per-label", "2", "--test-per-label", "4", "-q")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:6] == ["model", "accuracy", "failed", "status", "macro_f1", "n"]
    low, high = stats.wilson_interval(20, 20)
    rows = [line.split() for line in lines[1:3]]
    assert all(r[1:4] == ["100.0%", f"[{low:.1%},", f"{high:.1%}]"] and r[4:6] == ["0", "ok"] and r[7] == "20"
               for r in rows), out.stdout
    runs = RunStore(settings).list_runs(kind="baseline")
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["run_id"]) <= set(out.stdout.split())
    assert "mlflow ui --backend-store-uri sqlite:///" in out.stdout


@pytest.mark.slow
def test_cli_errors_are_messages_not_tracebacks(settings, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,A\n")
    out = run_cli("baseline", "--task", str(bad), "--models", "openai/x@http://127.0.0.1:9/v1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "error:" in out.stderr and "description" in out.stderr
    out = run_cli("check", "no-such-model")
    assert out.returncode == 2 and "Unknown model 'no-such-model'" in out.stderr


@pytest.mark.slow
def test_check_and_models(stub, settings):
    out = run_cli("check", f"openai/stub-small@{stub.base_url}")
    assert out.returncode == 0 and out.stdout.startswith("OK stub-small")
    out = run_cli("models", "add", "my-llama", "openai/llama3.1", "--api-base", "http://127.0.0.1:11434/v1")
    assert out.returncode == 0
    out = run_cli("models")
    assert "my-llama" in out.stdout and "gpt-oss-20b (Databricks)" in out.stdout and "0.070" in out.stdout


@pytest.mark.slow
def test_optimize_end_to_end_then_jobs(stub, settings, tmp_path):
    stub.responder = gepa_responder
    csv = write_csv(tmp_path / "s.csv", 12)
    url = stub.base_url
    out = run_cli("optimize", "--task", str(csv), "--student", f"openai/stub-small@{url}",
                  "--reflection", f"openai/stub-large@{url}", "--budget", "60", "--val-per-label", "2",
                  "--test-per-label", "4", "--threads", "2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "succeeded" in out.stdout and "test accuracy: original" in out.stdout
    listing = run_cli("jobs")
    assert "optimize" in listing.stdout and "succeeded" in listing.stdout
    runs = RunStore(settings).list_runs()
    assert set(runs["kind"]) == {"optimization", "evaluation"}
