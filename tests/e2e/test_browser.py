"""End to end in a real headless browser: `streamlit run app.py` against the stub OpenAI-compatible server.

Through the UI: add a student and a reflection model, run a baseline, run a small GEPA job to the end,
see the Compare charts and a highlighted prompt difference. Screenshots of each page go to
``test-output/e2e/`` (or ``$E2E_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_port, wait_http
from tests.stub_server import StubLLMServer, gepa_responder

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("E2E_SCREENSHOTS", ROOT / "test-output" / "e2e"))

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                                  reason="needs Debian's chromium (apt-get install chromium)")]


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    data = tmp_path / "studio"
    env = {**os.environ, "GEPA_STUDIO_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
           "GEPA_STUDIO_SECRETS": str(tmp_path / "none.toml"), "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    assert wait_http(url + "/_stcore/health", timeout=60), (tmp_path / "streamlit.log").read_text()
    yield url
    proc.terminate()
    proc.wait(10)
    log.close()


def key(page, name: str):
    """The container of the widget whose Streamlit key is ``name``."""
    return page.locator(f'div.st-key-{re.sub(r"[^a-zA-Z0-9_-]", "-", name)}')


def goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=30_000)
    settle(page)


def settle(page, ms: int = 600) -> None:
    """Wait for the script run to end (Streamlit shows a running indicator meanwhile)."""
    page.wait_for_timeout(ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=60_000)


def pick(page, widget_key: str, option: str) -> None:
    """Choose ``option`` in the selectbox / multiselect with this key (typed, then clicked in its list)."""
    container = key(page, widget_key)
    for _ in range(4):
        settle(page, 1000)
        box = container.locator("input").first
        box.click()
        page.wait_for_timeout(300)
        box.press_sequentially(option, delay=20)
        page.wait_for_timeout(300)
        page.get_by_role("option", name=option, exact=True).first.click()
        if container.locator('[data-testid="stMultiSelect"]').count():
            page.keyboard.press("Escape")  # a multiselect keeps its list open (Escape would undo a selectbox)
        settle(page, 1000)
        if box.input_value() == option or option in container.inner_text():
            return
    raise AssertionError(f"could not choose {option!r} in {widget_key}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def add_model(page, name: str, base_url: str) -> None:
    key(page, "models.add.name").locator("input").fill(name)
    key(page, "models.add.model").locator("input").fill(name)
    key(page, "models.add.api_base").locator("input").fill(base_url)
    key(page, "models.add.submit").locator("button").click()
    settle(page, 1000)


@pytest.mark.timeout(420)
def test_configure_baseline_optimize_compare_and_diff(app_url):
    from playwright.sync_api import expect, sync_playwright

    with StubLLMServer(responder=gepa_responder) as stub, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(app_url, wait_until="networkidle")
            page.get_by_role("heading", name="GEPA Studio").first.wait_for()
            settle(page)
            shot(page, "1-home")

            # Models: add the student and the reflection model (an OpenAI-compatible server), assign roles.
            goto(page, "Models")
            add_model(page, "stub-small", stub.base_url)
            add_model(page, "stub-large", stub.base_url)
            pick(page, "models.student.w", "stub-small")
            pick(page, "models.reflection.w", "stub-large")
            pick(page, "models.check.name", "stub-small")
            key(page, "models.check").locator("button").click()
            expect(page.get_by_text("stub-small: answered in", exact=False).first).to_be_visible(timeout=30_000)
            shot(page, "2-models")

            # Task: the bundled demo task with the default sizes (3 train / 10 test per label).
            goto(page, "Task")
            expect(page.get_by_text("BACKGROUND").first).to_be_visible()
            shot(page, "3-task")

            # Baselines: both models, in the background, until the results table shows them.
            goto(page, "Baselines")
            pick(page, "baselines.models.w", "stub-small")
            pick(page, "baselines.models.w", "stub-large")
            key(page, "baselines.start").locator("button").click()
            expect(page.get_by_text("succeeded").first).to_be_visible(timeout=120_000)
            settle(page, 1500)
            shot(page, "4-baselines")

            # Optimize: a custom budget of 60 metric calls, to the end.
            goto(page, "Optimize")
            key(page, "optimize.budget").get_by_text("custom", exact=True).click()
            settle(page)
            key(page, "optimize.max_calls").locator("input").fill("60")
            page.keyboard.press("Enter")
            settle(page)
            key(page, "optimize.start").locator("button").click()
            expect(page.get_by_text("Test accuracy after").first).to_be_visible(timeout=240_000)
            shot(page, "5-optimize")

            # Compare: the charts are drawn.
            goto(page, "Compare")
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
            assert page.locator(".js-plotly-plot").count() >= 2
            shot(page, "6-compare")

            # Prompts: original vs optimized, with the difference highlighted.
            goto(page, "Prompts")
            expect(page.locator(".gs-diff ins").first).to_be_visible(timeout=30_000)
            assert "Label as" in page.locator(".gs-diff ins").first.inner_text() or page.locator(".gs-diff ins").count() > 0
            shot(page, "7-prompts")

            goto(page, "History")
            shot(page, "8-history")
        except Exception:
            shot(page, "failure")
            raise
        browser.close()
    assert len(stub.chat_requests()) > 100  # the UI really drove the models over HTTP
