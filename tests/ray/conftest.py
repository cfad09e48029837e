"""The Ray tests run against a real Ray head and a real MLflow tracking server, both started by ``.ci/run``:

- ``GEPA_STUDIO_TEST_RAY_ADDRESS``: the head's job-submission address (``http://127.0.0.1:8265``);
- ``GEPA_STUDIO_TEST_TRACKING_URI``: the tracking server (``http://127.0.0.1:5055``) the workers log to.

Without them these tests are skipped, unless ``GEPA_STUDIO_REQUIRE_RAY=1`` (CI sets it): then they fail, so CI
never passes with the Ray tests silently not run. To run them by hand, start both as ``.ci/run`` does.
"""

from __future__ import annotations

import os
import urllib.request

import pytest

from core.config.settings import Settings


def _service(var: str, probe: str) -> str:
    value = os.environ.get(var)
    why = None
    if not value:
        why = f"{var} is not set (start a Ray head and an MLflow server as .ci/run does)"
    else:
        try:
            urllib.request.urlopen(value.rstrip("/") + probe, timeout=5).read()
        except OSError as exc:
            why = f"{var}={value} does not answer: {exc}"
    if why:
        if os.environ.get("GEPA_STUDIO_REQUIRE_RAY") == "1":
            pytest.fail(f"The Ray tests need their services: {why}")
        pytest.skip(why)
    return value


@pytest.fixture(scope="session")
def ray_address() -> str:
    """The Ray head's job-submission address (the Jobs API of ``ray[default]``)."""
    return _service("GEPA_STUDIO_TEST_RAY_ADDRESS", "/api/version")


@pytest.fixture(scope="session")
def tracking_server() -> str:
    """The MLflow tracking server the Ray workers and the test log to and read from."""
    return _service("GEPA_STUDIO_TEST_TRACKING_URI", "/health")


@pytest.fixture
def ray_settings(tmp_path, ray_address, tracking_server) -> Settings:
    """This test's own data dir (the registry: dashboard-side only), results on the tracking server, jobs on Ray."""
    data = tmp_path / "data"
    return Settings(data_dir=data, tracking_uri=tracking_server, artifact_root=data / "mlartifacts",
                    ray_address=ray_address).ensure()
