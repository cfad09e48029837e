"""The shareable report opens offline: headless Chromium with every request that is not file:// aborted draws every
chart (plotly's JavaScript is in the file), runs no script from the task's text, and asks for nothing on the network.
Screenshots go to ``test-output/e2e/report-*.png``."""

from __future__ import annotations

import re

import pytest

from tests.core.test_report import build_runs, half_right
from tests.e2e.browser import ARGS, CHROMIUM, SHOTS

pytestmark = pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it

DRAWN_JS = "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length"


@pytest.mark.timeout(120)
def test_the_report_renders_offline_with_every_chart(store, stub, tmp_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    from core.report import write_report

    monkeypatch.setenv("GEPA_STUDIO_TRACES", "off")  # the report reads no traces; tracing would only slow the runs
    stub.responder = half_right  # stub-small misses a label: the baselines' verdict has a difference to show
    ids = build_runs(store, tmp_path, stub.base_url)
    path = write_report(store, [ids["optimization"], ids["stub-small"], ids["stub-large"]], tmp_path / "report.html")
    figures = int(re.search(r'name="gepa-studio-figures" content="(\d+)"', path.read_text(encoding="utf-8")).group(1))
    assert figures >= 8
    SHOTS.mkdir(parents=True, exist_ok=True)
    blocked, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})

            def only_files(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            page.route("**/*", only_files)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_function(f"() => ({DRAWN_JS})() >= {figures}", timeout=20_000)
            assert page.evaluate("() => document.querySelectorAll('.js-plotly-plot').length") == figures
            assert page.evaluate(DRAWN_JS) == figures  # every chart has its .main-svg: plotly drew it
            assert page.evaluate("() => window.pwned") is None  # the task's <script> stayed text
            assert page.locator("p.verdict").count() >= 2  # original → optimized, and the baselines' pair
            page.screenshot(path=str(SHOTS / "report-top.png"))
            page.locator("h3", has_text="GEPA's search").first.scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "report-search.png"))
            page.locator("h2#evaluations").scroll_into_view_if_needed()
            page.screenshot(path=str(SHOTS / "report-evaluations.png"))
            page.screenshot(path=str(SHOTS / "report-full.png"), full_page=True)
        finally:
            browser.close()
    assert blocked == [], f"the report asked the network for {blocked}"
    assert errors == [], errors
