"""The dashboard as a real `streamlit run app.py` process on a free loopback port, with its own data dir."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.e2e.browser import ROOT
from tests.ports import free_port, wait_http


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    data = tmp_path / "studio"
    env = {**os.environ, "GEPA_STUDIO_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
           "GEPA_STUDIO_SECRETS": str(tmp_path / "none.toml"), "PYTHONPATH": str(ROOT),
           "GEPA_STUDIO_TRACES": "on"}  # as users run it: every LM call an MLflow trace
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    assert wait_http(url + "/_stcore/health", timeout=60), (tmp_path / "streamlit.log").read_text()
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:  # a loaded machine: Streamlit is slow to stop, not stuck for good
        proc.kill()
        proc.wait(10)
    log.close()
