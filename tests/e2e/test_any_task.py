"""End to end in a real headless browser, for a task beyond classification: upload an extraction CSV, pick its input
and output columns and a metric, run a baseline and GEPA, read the verdict, the per-field table and a changed
example's diff on Compare, and download the report. Screenshots go to ``test-output/e2e/any-*.png``."""

from __future__ import annotations

import re
import shutil

import pytest

from core.tasks.task_file import SHIPPED_DIR
from tests.e2e.browser import (
    dashboard,
    download_report,
    goto,
    key,
    pick,
    settle,
    shot,
    start_custom_gepa,
    stub_student_and_reflection,
    upload_table,
)
from tests.stub_tasks import task_stub

pytestmark = pytest.mark.e2e


def _number(page, widget_key: str, value: int) -> None:
    box = key(page, widget_key).locator("input")
    box.fill(str(value))
    box.press("Enter")
    settle(page, 800)


def _task(page, csv) -> None:
    """Task: upload the table, any task, sentence -> drug, dose, condition (text, token F1), 20 / 0 / 30 rows."""
    from playwright.sync_api import expect

    upload_table(page, csv, "Any task")
    # The page guesses the last column as the output and the others as inputs: keep only sentence as an input
    # (Backspace takes a multiselect's last choice away, as a person would), then add the other two outputs.
    inputs = key(page, "task.fields.inputs")
    expect(inputs.get_by_text("dose", exact=True)).to_be_visible()
    for _ in range(2):
        inputs.locator("input").first.click()
        page.keyboard.press("Backspace")
        page.keyboard.press("Escape")
        settle(page, 1000)
    assert "dose" not in inputs.inner_text() and "sentence" in inputs.inner_text()
    for column in ("drug", "dose"):
        pick(page, "task.fields.outputs", column)
    _number(page, "task.train", 20)
    _number(page, "task.test", 30)
    expect(page.get_by_text(re.compile(r"Using \*?\*?trial_extraction")).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("[[ ## sentence ## ]]", exact=False).first).to_be_visible(timeout=30_000)
    shot(page, "any-1-task")


def _baseline_and_gepa(page) -> None:
    from playwright.sync_api import expect

    goto(page, "Baselines")
    pick(page, "baselines.models.w", "stub-small")
    pick(page, "baselines.models.w", "stub-large")
    key(page, "baselines.start").locator("button").click()
    expect(page.get_by_text("succeeded").first).to_be_visible(timeout=120_000)
    settle(page, 1500)
    shot(page, "any-2-baselines")
    start_custom_gepa(page, 120)
    expect(page.get_by_text("Test score (token F1) after").first).to_be_visible(timeout=240_000)
    shot(page, "any-3-optimize")


def _compare_and_report(page, tmp_path) -> str:
    """Compare: the verdict names its test, the per-field table, a changed example's word diff; the report's HTML."""
    from playwright.sync_api import expect

    goto(page, "Compare")
    expect(page.get_by_text("paired permutation test", exact=False).first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("per output field", exact=False).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"The \d+ largest changes, largest first")).first).to_be_visible(timeout=30_000)
    settle(page, 2000)
    shot(page, "any-4-compare")
    expect(page.get_by_text("Word by word, from A's answer to B's", exact=False)).to_be_visible(timeout=30_000)
    expect(page.locator(".gs-diff ins").first).to_be_visible(timeout=30_000)
    assert "Confusion matrix" not in page.content()
    return download_report(page, tmp_path / "report.html", timeout_ms=120_000)


@pytest.mark.timeout(480)
def test_upload_extraction_pick_fields_baseline_gepa_verdict_fields_diff_report(app_url, tmp_path):
    csv = tmp_path / "trial_extraction.csv"
    shutil.copy(SHIPPED_DIR / "extract" / "data.csv", csv)
    with task_stub() as stub, dashboard(app_url, "any-failure") as page:
        stub_student_and_reflection(page, stub.base_url)
        _task(page, csv)
        _baseline_and_gepa(page)
        report = _compare_and_report(page, tmp_path)
    assert "token F1" in report and "paired permutation test" in report and "Confusion matrix" not in report
    assert len(stub.chat_requests()) > 150  # the UI drove the models over HTTP
