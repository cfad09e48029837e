"""The store behind a real MLflow tracking server (what `mlflow ui` shows), reached by MLFLOW_TRACKING_URI."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.core.test_cli import run_cli
from tests.ports import free_port, wait_http
from tests.scenario import write_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlflow_server(tmp_path):
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "server-artifacts")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    if not wait_http(url + "/health", timeout=90, poll=0.5):
        proc.kill()
        pytest.fail("mlflow server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


def api(url: str, path: str, payload: dict) -> dict:
    req = urllib.request.Request(url + path, data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


@pytest.mark.slow
def test_baseline_runs_land_on_a_tracking_server(stub, tmp_path, monkeypatch, mlflow_server):
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(tmp_path / "studio"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    csv = write_csv(tmp_path / "s.csv", 8)
    out = run_cli("baseline", "--task", str(csv), "--models", f"openai/stub-small@{stub.base_url}",
                  "--train-per-label", "2", "--test-per-label", "3", "-q")
    assert out.returncode == 0, out.stderr
    exps = api(mlflow_server, "/api/2.0/mlflow/experiments/search", {"max_results": 100})["experiments"]
    exp = next(e for e in exps if e["name"] == "gepa-studio/s")
    runs = api(mlflow_server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    assert len(runs) == 1 and runs[0]["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in runs[0]["data"]["metrics"]}
    assert metrics["accuracy"] == 1.0 and metrics["n"] == 15
    assert runs[0]["info"]["run_id"] in out.stdout
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    store = RunStore(load_settings())
    assert len(store.read_csv(runs[0]["info"]["run_id"], "records.csv")) == 15  # artifacts via the server
