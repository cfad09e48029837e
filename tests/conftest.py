"""Shared fixtures: a stub OpenAI-compatible server on 127.0.0.1 and a temporary data dir / MLflow store."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# MLflow traces cost ~0.07 s of store CPU per LM call: off for the suite; tests/core/test_tracing.py, the page
# tests that show trace counts and the browser tests turn them on.
os.environ.setdefault("GEPA_STUDIO_TRACES", "off")
# A developer's own cluster must not take the suite's jobs: the Ray tests name theirs (tests/ray/conftest.py).
os.environ.pop("RAY_ADDRESS", None)
# DSPy's disk cache for this test session only (a fresh folder: no hits from earlier sessions), removed at exit.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="gepa-studio-dspy-cache-")

import pytest

from tests.e2e.browser import CHROMIUM
from tests.stub_server import StubLLMServer

atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)

# Tiers (scripts/test --fast leaves out e2e, ray and slow): a folder's tests get its marker here; a slow test
# elsewhere carries @pytest.mark.slow itself.
TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = {"e2e": "e2e", "ray": "ray"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = item.path.resolve().relative_to(TESTS).parts
        if len(parts) > 1 and parts[0] in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[parts[0]])


def browser_required() -> bool:
    """In CI (``CI=true``) or with ``GEPA_STUDIO_REQUIRE_BROWSER=1`` (scripts/test sets it) a browser test without
    Chromium fails: a run that passes has run them all."""
    return os.environ.get("GEPA_STUDIO_REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() == "true"


def pytest_runtest_setup(item):
    """A browser test (marker ``e2e``) without Debian's chromium: skipped here, failed in CI."""
    if item.get_closest_marker("e2e") and not Path(CHROMIUM).exists():
        why = "needs Debian's chromium (apt-get install chromium; scripts/test installs it)"
        if browser_required():
            pytest.fail(f"{why}; it is required here (CI=true or GEPA_STUDIO_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(why)


@pytest.fixture
def stub():
    """A fresh stub server per test, on a port of its own."""
    with StubLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_dspy_cache(tmp_path_factory, monkeypatch):
    """Each test gets an empty DSPy cache. The key holds the base URL (core.lm.cache), but a later test's stub may
    get an earlier one's port, and a test's call counts must not depend on what ran before it."""
    import dspy

    cache_dir = tmp_path_factory.mktemp("dspy-cache")
    monkeypatch.setenv("DSPY_CACHEDIR", str(cache_dir))  # for subprocesses (CLI, job workers)
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(cache_dir))
    yield


def pytest_configure(config):
    config.addinivalue_line("markers", "fresh_store: the data dir starts without an MLflow database (first use)")


def _point_at(monkeypatch, d: Path, secrets: Path) -> None:
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(d))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{d / 'mlflow.db'}")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(secrets))


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite file: migrating a new one costs ~1 s of CPU (5 s on a loaded machine) per
    test, copying it ~0.1 s."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        _point_at(mp, root, root / "no-secrets.toml")
        from core.config.settings import load_settings
        from core.tracking.store import RunStore

        RunStore(load_settings().ensure()).list_runs()
    return root / "mlflow.db"


@pytest.fixture
def data_dir(request, tmp_path, monkeypatch, template_db):
    """A fresh data dir whose SQLite MLflow store starts as a copy of the migrated empty template, or with no
    database at all for a test marked ``fresh_store`` (also set in the environment for subprocesses)."""
    d = tmp_path / "studio"
    if not request.node.get_closest_marker("fresh_store"):
        d.mkdir()
        shutil.copy(template_db, d / "mlflow.db")
    _point_at(monkeypatch, d, tmp_path / "no-secrets.toml")
    return d


@pytest.fixture
def settings(data_dir):
    from core.config.settings import load_settings

    return load_settings().ensure()


@pytest.fixture
def store(settings):
    from core.tracking.store import RunStore

    return RunStore(settings)


@pytest.fixture
def restore_logging():
    """The key scrub's install() changes process-wide logging; put it back after the test."""
    import logging

    factory = logging.getLogRecordFactory()
    handlers = {h: list(h.filters) for h in logging.getLogger().handlers}
    yield
    logging.setLogRecordFactory(factory)
    for handler, filters in handlers.items():
        handler.filters[:] = filters
