"""Shared fixtures: a stub OpenAI-compatible server on 127.0.0.1 and a temporary data dir / MLflow store."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# MLflow traces cost ~0.07 s of store CPU per LM call: off for the suite; tests/core/test_tracing.py, the page
# tests that show trace counts and the browser tests turn them on.
os.environ.setdefault("GEPA_STUDIO_TRACES", "off")
# A developer's own cluster must not take the suite's jobs: the Ray tests name theirs (tests/ray/conftest.py).
os.environ.pop("RAY_ADDRESS", None)
# DSPy's disk cache for this test session only (a fresh folder: no hits from earlier sessions), removed at exit.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="gepa-studio-dspy-cache-")

import pytest

from tests.stub_server import StubLLMServer

atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)


@pytest.fixture
def stub():
    """A fresh stub server per test, on a port of its own."""
    with StubLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_dspy_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty DSPy cache. The key holds the base URL (core.lm_cache), but a later test's stub may
    get an earlier one's port, and a test's call counts must not depend on what ran before it."""
    import dspy

    cache_dir = tmp_path_factory.mktemp("dspy-cache")
    monkeypatch.setenv("DSPY_CACHEDIR", str(cache_dir))  # for subprocesses (CLI, job workers)
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(cache_dir))
    yield


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
