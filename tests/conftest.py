"""Shared fixtures: a stub OpenAI-compatible server on 127.0.0.1 and a temporary data dir / MLflow store."""

from __future__ import annotations

import os

import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# DSPy's disk cache for this test session only (a fresh folder: no hits from earlier sessions).
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="gepa-studio-dspy-cache-")

import pytest

from tests.stub_server import StubLLMServer, keyword_classifier


@pytest.fixture(scope="session")
def stub_server():
    """One stub server per test session; tests that change its behaviour restore it (see ``stub``)."""
    with StubLLMServer() as server:
        yield server


@pytest.fixture
def stub(stub_server):
    """The session's stub server, reset to default behaviour before and after the test."""
    def reset():
        stub_server.responder = keyword_classifier
        stub_server.latency_s = 0.0
        stub_server.api_key = None
        stub_server.reset()

    reset()
    yield stub_server
    reset()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh data dir and SQLite MLflow store for this test (also set in the environment for subprocesses)."""
    d = tmp_path / "studio"
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(d))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{d / 'mlflow.db'}")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(tmp_path / "no-secrets.toml"))
    return d


@pytest.fixture
def settings(data_dir):
    from core.settings import load_settings

    return load_settings().ensure()


@pytest.fixture
def store(settings):
    from core.store import RunStore

    return RunStore(settings)
