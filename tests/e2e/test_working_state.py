"""The dashboard as people use it, in a real headless browser against the stub server.

A price edited on the Models page; a Predict and a chain-of-thought baseline of one model shown apart; a GEPA job
under a spending cap, with the page reloaded while it runs (models, task and job come back); the capped run
evaluated on the test set with one click and shown on Compare and Prompts, marked capped; inside it (the Optimization
page): its search, candidates, per-example grid, rejected proposals and cost by role; on Compare its verdict, flipped
examples and confusion matrices, and the report downloaded. Every page is photographed at 1280 and 1920 px
(``<page>-<width>.png`` in ``test-output/e2e/``) and fails on a value cut off.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.browser import (
    ARGS,
    CHROMIUM,
    SHOTS,
    add_model,
    dashboard,
    download_report,
    goto,
    key,
    pick,
    settle,
    shots_at,
    widget_text,
)
from tests.stub_server import Faults, StubLLMServer, chat_answer, gepa_responder, system_text

pytestmark = pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it


def responder(model, messages, body):
    """gepa_responder, plus a reasoning field when the program is chain of thought."""
    answer = gepa_responder(model, messages, body)
    if "[[ ## reasoning ## ]]" in system_text(messages) and answer.startswith("[[ ## target"):
        return chat_answer("reasoning", "The sentence reads like its section.") + "\n\n" + answer
    return answer


def edit_price(page, name: str, price_in: float) -> None:
    pick(page, "models.edit.pick", name)
    field = key(page, "models.edit.price_in").locator("input")
    field.fill(str(price_in))
    key(page, "models.edit.save").locator("button").click()
    settle(page, 1000)


def run_baseline(page, module_label: str, timeout_s: float = 120) -> None:
    """Start a baseline of the chosen models with the program ``module_label`` and wait for it to succeed: the job
    picker shows the new job (its label names its id) with its state once the job has ended."""
    picker = key(page, "baselines.job.w")
    before = widget_text(page, "baselines.job.w") if picker.count() else ""
    key(page, "baselines.module").get_by_text(module_label, exact=True).click()
    settle(page)
    key(page, "baselines.start").locator("button").click()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        settle(page, 1000)
        now = widget_text(page, "baselines.job.w") if picker.count() else ""
        if now != before and "succeeded" in now:
            return
        assert not ("failed" in now and now != before), now
    raise AssertionError(f"the {module_label} baseline did not succeed in {timeout_s:.0f} s: {now}")


@pytest.mark.timeout(600)
def test_reload_mid_job_capped_run_to_compare_and_nothing_cut_off(app_url, tmp_path):
    stub_server = StubLLMServer(responder=responder, faults=Faults(slow_s=0.05))
    with stub_server as stub, dashboard(app_url, "failure-working-state") as page:
        shots_at(page, "11-home")
        models_priced(page, tmp_path / "studio", stub.base_url)
        task_shown(page)
        baselines_apart(page)
        optimize_capped_and_reloaded(page)
        capped_run_evaluated(page)
        inside_the_optimization(page)
        compare_and_report(page)
        prompts_and_history(page)


def models_priced(page, data, base_url: str) -> None:
    """Models: two priced models; the student's input price edited after adding it."""
    goto(page, "Models")
    add_model(page, "stub-small", base_url)
    add_model(page, "stub-large", base_url)
    edit_price(page, "stub-small", 2.0)
    catalog = json.loads((data / "models.json").read_text())
    small = next(m for m in catalog["models"] if m["name"] == "stub-small")
    assert small["input_price_per_m"] == 2.0, small
    edit_price(page, "stub-large", 5.0)
    pick(page, "models.student.w", "stub-small")
    pick(page, "models.reflection.w", "stub-large")
    shots_at(page, "12-models")


def task_shown(page) -> None:
    from playwright.sync_api import expect

    goto(page, "Task")
    expect(page.get_by_text("BACKGROUND").first).to_be_visible()
    shots_at(page, "13-task")


def baselines_apart(page) -> None:
    """Baselines: the student, Predict then chain of thought: two runs that stay apart."""
    goto(page, "Baselines")
    pick(page, "baselines.models.w", "stub-small")
    page.get_by_text("Options", exact=True).click()
    run_baseline(page, "Predict")
    run_baseline(page, "Chain of thought")
    shots_at(page, "14-baselines")


def optimize_capped_and_reloaded(page) -> None:
    """Optimize under a spending cap; reload while it runs: models, task and the job come back."""
    from playwright.sync_api import expect

    goto(page, "Optimize")
    key(page, "optimize.budget").get_by_text("custom", exact=True).click()
    settle(page)
    key(page, "optimize.max_calls").locator("input").fill("400")
    page.keyboard.press("Enter")
    key(page, "optimize.capped").locator("label").click()
    settle(page)
    key(page, "optimize.cap").locator("input").fill("0.05")
    page.keyboard.press("Enter")
    settle(page)
    key(page, "optimize.start").locator("button").click()
    expect(key(page, "optimize.cancel")).to_be_visible(timeout=60_000)  # queued or running
    page.reload(wait_until="networkidle")
    page.get_by_role("heading", name="Optimize", exact=True).first.wait_for()
    settle(page)
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_text("stub-small").first).to_be_visible()
    expect(main.get_by_text("stub-large").first).to_be_visible()
    expect(main.get_by_text("demo:").first).to_be_visible()
    expect(main.get_by_text("GEPA stub-small ← stub-large").first).to_be_visible(timeout=30_000)
    assert "No optimization in this session yet" not in main.inner_text()


def capped_run_evaluated(page) -> None:
    """The cap stops it; one click evaluates the best program so far on the test set."""
    from playwright.sync_api import expect

    expect(page.get_by_text("Stopped: spending cap").first).to_be_visible(timeout=240_000)
    settle(page, 1500)
    finish = key(page, "optimize.finish").get_by_role("button").first
    expect(finish).to_contain_text("Evaluate on the test set")
    finish.click()
    expect(page.get_by_text("Test accuracy after").first).to_be_visible(timeout=180_000)
    shots_at(page, "15-optimize")


def inside_the_optimization(page) -> None:
    """Inside the optimization, from the job's link (the URL carries run=): its search, as GEPA ran it."""
    from playwright.sync_api import expect

    page.get_by_text("See inside the optimization", exact=True).first.click()
    page.get_by_role("heading", name="Optimization", exact=True).first.wait_for(timeout=30_000)
    settle(page, 1500)
    assert "run=" in page.url, page.url
    assert "capped" in widget_text(page, "optimization.run"), widget_text(page, "optimization.run")
    for chart in ("score", "lineage", "grid", "cost"):
        expect(key(page, f"optimization.chart.{chart}").locator(".main-svg").first).to_be_visible(timeout=30_000)
    expect(key(page, "optimization.candidate")).to_be_visible()
    main = page.locator('[data-testid="stMain"]')
    origin = main.get_by_text(re.compile(r"^(Against its parent #\d+|The starting instruction)")).first
    expect(origin).to_be_visible()
    if key(page, "optimization.proposal").count():  # a rejected proposal: its table, and one to read
        expect(main.get_by_text("Feedback the reflection model read").first).to_be_visible()
    else:  # the stub's reflection may never be turned down: the page says so
        expect(main.get_by_text("GEPA rejected no proposal").first).to_be_visible()
    expect(main.get_by_role("heading", name="Calls and cost by role")).to_be_visible()
    expect(main.get_by_text(re.compile("MLflow traces")).first).to_be_visible()
    shots_at(page, "16-optimization")


def compare_and_report(page) -> None:
    """Compare: Predict and CoT apart; the capped optimization with its paired test, marked capped; its verdict, the
    examples that flipped and both confusion matrices; the report, built and downloaded."""
    from playwright.sync_api import expect

    goto(page, "Compare")
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    charts = " ".join(page.locator(".js-plotly-plot").all_text_contents())
    assert "stub-small · Predict" in charts and "stub-small · CoT" in charts, charts[:2000]
    expect(page.get_by_text("This optimization was capped").first).to_be_visible()
    assert "capped" in widget_text(page, "compare.opt"), widget_text(page, "compare.opt")
    expect(page.get_by_text("Accuracy after").first).to_be_visible()
    verdicts = page.get_by_text(re.compile(r"(exact McNemar|too few to test a difference|no difference seen)"))
    expect(verdicts.first).to_be_visible()
    expect(page.get_by_text("Flipped examples").first).to_be_visible()
    for side in ("a", "b"):
        expect(key(page, f"compare.chart.confusion.{side}").locator(".main-svg").first).to_be_visible()
    html = download_report(page, SHOTS / "report-from-compare.html")
    assert html.lstrip().lower().startswith("<!doctype html") and "stub-small" in html, html[:500]
    shots_at(page, "17-compare")
    print(f"The verdict as the dashboard printed it: {verdicts.first.inner_text()}")


def prompts_and_history(page) -> None:
    """Prompts: the capped optimization's original and optimized prompts; then History."""
    from playwright.sync_api import expect

    goto(page, "Prompts")
    assert "capped" in widget_text(page, "prompts.opt"), widget_text(page, "prompts.opt")
    expect(page.locator(".gs-diff").first).to_be_visible(timeout=30_000)
    shots_at(page, "18-prompts")
    goto(page, "History")
    shots_at(page, "19-history")


def test_the_cut_off_check_sees_ellipses_and_clipped_text():
    """The check the screenshots rely on can fail: an ellipsis, a clipped select-box choice and a button row that
    must be scrolled sideways to read (a segmented control's "Judge (reflection m…" at 1280 px) are seen; text that
    fits, wraps, or sits in a code block that scrolls is not."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import truncated

    html = """<div style='width:100px;overflow:hidden;white-space:nowrap'><div><span>stub-small · Predict · original
      · demo</span></div></div>
      <div style='width:100px;overflow:hidden;white-space:nowrap;text-overflow:ellipsis'>Estimated $0.0305–$0.0412</div>
      <div style='width:400px;overflow:hidden'>fits</div>
      <div style='width:100px;overflow:hidden'>wraps onto as many lines as it needs</div>
      <div style='width:100px;overflow-x:auto;white-space:nowrap'><button>Rule</button><button>Judge (reflection
      model)</button></div>
      <pre style='width:100px;overflow:auto'><code>mlflow ui --backend-store-uri sqlite:///a/long/path</code></pre>"""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_content(html)
        found = truncated(page)
        browser.close()
    assert [t.split()[0] for t in found] == ["stub-small", "Estimated", "Judge"], found
