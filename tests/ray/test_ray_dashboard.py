"""A user with ``RAY_ADDRESS`` set runs a sweep from the dashboard (a real `streamlit run` in headless Chromium):
the Home page says jobs run on the cluster, the sweep's jobs run as Ray jobs and log to the tracking server, and
Compare groups its runs per cell. Screenshots: ``test-output/e2e/ray-*.png``."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from core.config.settings import Settings
from core.jobs import JobManager
from tests.e2e.browser import add_model, dashboard, goto, key, pick, settle, shots_at, streamlit_app
from tests.stub_server import StubLLMServer, gepa_responder

pytestmark = pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it


@pytest.fixture
def ray_app_url(tmp_path, ray_address, tracking_server):
    with streamlit_app(tmp_path, MLFLOW_TRACKING_URI=tracking_server, RAY_ADDRESS=ray_address) as url:
        yield url


@pytest.mark.timeout(480)
def test_a_sweep_from_the_dashboard_runs_on_ray_and_is_grouped_on_compare(ray_app_url, tracking_server, tmp_path,
                                                                         ray_address):
    from playwright.sync_api import expect

    with StubLLMServer(responder=gepa_responder, models=("stub-small", "stub-tiny", "stub-large")) as stub, \
            dashboard(ray_app_url, "ray-failure") as page:
        expect(page.get_by_text("Ray cluster at", exact=False).first).to_be_visible(timeout=30_000)
        goto(page, "Models")
        for name in ("stub-small", "stub-tiny", "stub-large"):
            add_model(page, name, stub.base_url)
        pick(page, "models.student.w", "stub-small")
        pick(page, "models.reflection.w", "stub-large")
        goto(page, "Task")
        expect(page.get_by_text("BACKGROUND").first).to_be_visible()

        # Optimize → Sweep: two students × one optimizer × one seed × a 40-call budget = 2 Ray jobs.
        goto(page, "Optimize")
        page.get_by_text("Sweep: several students", exact=False).first.click()
        settle(page)
        expect(key(page, "optimize.sweep.students")).to_contain_text("stub-small")  # the student, by default
        pick(page, "optimize.sweep.students", "stub-tiny")
        key(page, "optimize.sweep.budgets").locator("input").first.click()
        page.keyboard.press("Backspace")  # drop the default budget ("light")
        page.keyboard.press("Escape")
        key(page, "optimize.sweep.more_budgets").locator("input").fill("calls:40")
        page.keyboard.press("Enter")
        settle(page, 1500)
        run = key(page, "optimize.sweep.run").locator("button")
        expect(run).to_contain_text("Run sweep (2 jobs)")
        run.click()
        # Planning and queueing the cells takes a while on a loaded machine: the page says when they are queued.
        expect(page.get_by_text("queued: 2 jobs", exact=False).first).to_be_visible(timeout=120_000)
        manager = JobManager(Settings(data_dir=tmp_path / "studio", tracking_uri=tracking_server,
                                      artifact_root=tmp_path / "studio" / "mlartifacts", ray_address=ray_address))
        assert manager.backend.__class__.__name__ == "RayBackend"
        sweep = next(j for j in manager.list() if j.kind == "sweep")
        sweep = manager.wait(sweep.id, timeout=300, poll=1.0)
        assert sweep.state == "succeeded", sweep.error
        children = [j for j in manager.list() if j.config.get("sweep") == sweep.id]
        assert len(children) == 2 and all(j.state == "succeeded" for j in children)
        expect(page.get_by_text("2 / 2 cells done", exact=False).first).to_be_visible(timeout=60_000)
        shots_at(page, "ray-optimize-sweep", widths=(1280,))

        # Compare: the sweep's runs, one row per cell.
        goto(page, "Compare")
        pick(page, "compare.sweep", f"{sweep.title} · {sweep.id}")
        expect(page.get_by_text("Sweep cells", exact=True)).to_be_visible(timeout=30_000)
        settle(page, 1500)
        shown = page.locator("body").inner_text()
        assert "stub-tiny · Predict · optimized" in shown and "stub-small · Predict · optimized" in shown
        shots_at(page, "ray-compare-sweep", widths=(1280,))

    client = MlflowClient(tracking_server)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string=f"tags.`studio.sweep` = '{sweep.id}'", max_results=100)
    optimizations = [r for r in runs if r.data.tags.get("studio.kind") == "optimization"]
    assert sorted(r.data.tags.get("studio.model") for r in optimizations) == ["stub-small", "stub-tiny"]
    # (the workers' DSPy cache lives on the node, across jobs: a rerun of this test may not call the stub at all)
    assert all("optimized_test_accuracy" in r.data.metrics for r in optimizations)
