"""End to end in a real headless browser, for your own DSPy program (#24): the operator's folder holds the two-step
example program; the Task page picks it, checks it in a child process and maps the demo table's columns onto it;
GEPA optimizes it over HTTP; the Optimization page colors the lineage by the predictor each candidate changed, and
Prompts shows one diff per predictor. Screenshots go to ``test-output/e2e/program-*.png``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.browser import (
    dashboard,
    goto,
    key,
    pick,
    settle,
    shot,
    start_custom_gepa,
    streamlit_app,
    stub_student_and_reflection,
    upload_table,
)
from tests.stub_programs import program_stub

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _task(page, csv: Path) -> None:
    from playwright.sync_api import expect

    upload_table(page, csv, "Your own DSPy program")
    pick(page, "task.program.name", "make_program")
    pick(page, "task.program.function", "extract_then_classify.py:metric")
    key(page, "task.program.check").get_by_role("button", name="Check program").click()
    expect(page.get_by_text("2 predictor(s)", exact=False).first).to_be_visible(timeout=60_000)
    pick(page, "task.program.in.sentence", "description")
    pick(page, "task.program.out.label", "target")
    expect(page.get_by_text(re.compile(r"Using \*?\*?demo_sentences")).first).to_be_visible(timeout=30_000)
    shot(page, "program-1-task")


@pytest.mark.timeout(420)
def test_pick_a_program_from_the_folder_optimize_it_and_read_each_predictor_s_diff(tmp_path):
    from playwright.sync_api import expect

    programs = tmp_path / "programs"
    programs.mkdir()
    shutil.copy(ROOT / "examples" / "programs" / "extract_then_classify.py", programs)
    csv = tmp_path / "demo_sentences.csv"
    shutil.copy(ROOT / "core" / "demo_data" / "demo_sentences.csv", csv)
    with program_stub() as stub, streamlit_app(tmp_path, GEPA_STUDIO_PROGRAMS_DIR=str(programs)) as url, \
            dashboard(url, "program-failure") as page:
        stub_student_and_reflection(page, stub.base_url)
        _task(page, csv)
        start_custom_gepa(page, 150)
        expect(page.get_by_text(re.compile(r"Test score \(.*\) after")).first).to_be_visible(timeout=240_000)
        shot(page, "program-2-optimize")
        goto(page, "Optimization")
        expect(page.get_by_text("changed classify", exact=False).first).to_be_visible(timeout=60_000)
        settle(page, 2000)
        shot(page, "program-3-optimization")
        goto(page, "Prompts")
        expect(page.get_by_text(re.compile(r"1 of 2 predictors changed: classify")).first).to_be_visible(
            timeout=60_000)
        expect(page.locator(".gs-diff ins").first).to_be_visible(timeout=30_000)
        settle(page, 1500)
        shot(page, "program-4-prompts")
    asked = [r for r in stub.chat_requests() if r["body"]["model"] == "stub-small"]
    assert any("[[ ## finding ## ]]" in str(r["body"]) for r in asked)  # the program's second step ran over HTTP
