"""End to end in a real headless browser: `streamlit run app.py` against the stub OpenAI-compatible server.

Through the UI: add a student and a reflection model, run a baseline, run a small GEPA job to the end,
see the Compare charts and a highlighted prompt difference. Screenshots of each page go to
``test-output/e2e/`` (or ``$E2E_SCREENSHOTS``).
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.browser import (
    dashboard,
    goto,
    key,
    pick,
    settle,
    shot,
    start_custom_gepa,
    stub_student_and_reflection,
)
from tests.stub_server import StubLLMServer, gepa_responder

pytestmark = pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it


@pytest.mark.timeout(420)
def test_configure_baseline_optimize_compare_and_diff(app_url):
    from playwright.sync_api import expect

    with StubLLMServer(responder=gepa_responder) as stub, dashboard(app_url, "failure") as page:
        shot(page, "1-home")

        # Models: add the student and the reflection model (an OpenAI-compatible server), assign roles.
        stub_student_and_reflection(page, stub.base_url)
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
        # stub-large answers as a reflection model (no label): its 50 examples fail, so the job ends "finished, 50
        # of 100 examples failed" (DEGRADED), not "succeeded"
        expect(page.get_by_text(re.compile(r"succeeded|finished, \d+ of \d+ examples failed")).first).to_be_visible(
            timeout=120_000)
        settle(page, 1500)
        shot(page, "4-baselines")

        # Optimize: a custom budget of 60 metric calls, to the end.
        start_custom_gepa(page, 60)
        expect(page.get_by_text("Test accuracy after").first).to_be_visible(timeout=240_000)
        shot(page, "5-optimize")

        # Compare: the charts are drawn.
        goto(page, "Compare")
        expect(page.locator(".js-plotly-plot").nth(1)).to_be_visible(timeout=30_000)  # charts draw one by one
        shot(page, "6-compare")

        # Prompts: original vs optimized, with the difference highlighted.
        goto(page, "Prompts")
        expect(page.locator(".gs-diff ins").first).to_be_visible(timeout=30_000)
        assert "Label as" in page.locator(".gs-diff ins").first.inner_text() or page.locator(".gs-diff ins").count() > 0
        shot(page, "7-prompts")

        goto(page, "History")
        shot(page, "8-history")
    assert len(stub.chat_requests()) > 100  # the UI really drove the models over HTTP
