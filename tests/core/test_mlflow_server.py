"""The store behind a real MLflow tracking server (what `mlflow ui` shows), reached by MLFLOW_TRACKING_URI."""

import json
import urllib.request
from pathlib import Path

import pytest

from tests.core.test_cli import run_cli
from tests.ports import mlflow_server as start_mlflow_server
from tests.scenario import write_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def mlflow_server(tmp_path):
    with start_mlflow_server(tmp_path) as url:
        yield url


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
