"""What the browser tests share: the dashboard as a `streamlit run` process, Chromium, and how to drive Streamlit's
widgets by their keys. Screenshots go to ``test-output/e2e/`` (or ``$E2E_SCREENSHOTS``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.ports import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("E2E_SCREENSHOTS", ROOT / "test-output" / "e2e"))

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@contextmanager
def dashboard(url: str, failure: str) -> Iterator:
    """Chromium (1400 x 1000) on the dashboard's home page; on an error, ``<failure>.png`` and ``<failure>.txt``
    (the page's text) next to the screenshots."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(url, wait_until="networkidle")
            page.get_by_role("heading", name="GEPA Studio").first.wait_for()
            settle(page)
            yield page
        except Exception as exc:
            shot(page, failure)
            text = page.locator("body").inner_text(timeout=10_000)
            (SHOTS / f"{failure}.txt").write_text(text)
            # CI keeps only the test's output: say where the page was and what it showed
            raise AssertionError(f"{exc}\n--- the page at {page.url} showed:\n{text[-3000:]}") from exc
        finally:
            browser.close()


@contextmanager
def streamlit_app(tmp_path: Path, **env: str) -> Iterator[str]:
    """`streamlit run app.py` with its data dir under ``tmp_path`` (``env`` adds or overrides variables); its URL."""
    port = free_port()
    data = tmp_path / "studio"
    env = {**os.environ, "GEPA_STUDIO_DATA_DIR": str(data), "MLFLOW_TRACKING_URI": f"sqlite:///{data / 'mlflow.db'}",
           "GEPA_STUDIO_SECRETS": str(tmp_path / "none.toml"), "PYTHONPATH": str(ROOT), **env}
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                 "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_http(url + "/_stcore/health", timeout=60), (tmp_path / "streamlit.log").read_text()
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:  # a loaded machine: Streamlit is slow to stop, not stuck for good
                proc.kill()
                proc.wait(10)


def key(page, name: str):
    """The container of the widget whose Streamlit key is ``name``."""
    return page.locator(f'div.st-key-{re.sub(r"[^a-zA-Z0-9_-]", "-", name)}')


def goto(page, title: str) -> None:
    """Open a page from the sidebar. A click that lands while a live fragment (a job's progress) reruns can be lost
    on a loaded machine: the link is clicked again, up to 3 times, as a person would."""
    heading = page.get_by_role("heading", name=title, exact=True).first
    for attempt in range(3):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        try:
            heading.wait_for(timeout=20_000)
            break
        except Exception:  # Playwright's TimeoutError: try the click again, then let it raise
            if attempt == 2:
                raise
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
    """Fill and submit the Models page's add form (after the form has taken its fresh defaults)."""
    settle(page, 1000)
    form = key(page, "models.add.name")
    try:
        form.wait_for(timeout=60_000)
    except Exception:  # noqa: BLE001 - once: a page switch lost on a loaded machine shows up as a missing form
        print(f"add_model: no add form at {page.url} after 60 s; opening the Models page again")
        goto(page, "Models")
        form.wait_for(timeout=60_000)
    fields = {"models.add.name": name, "models.add.model": name, "models.add.api_base": base_url}
    for _ in range(3):
        for widget, value in fields.items():
            key(page, widget).locator("input").fill(value)
        page.wait_for_timeout(300)
        if all(key(page, w).locator("input").input_value() == v for w, v in fields.items()):
            break
    key(page, "models.add.submit").locator("button").click()
    settle(page, 1500)
    page.get_by_text(f"Added {name}").first.wait_for(timeout=30_000)


def stub_student_and_reflection(page, base_url: str) -> None:
    """The Models page: ``stub-small`` and ``stub-large`` at ``base_url`` added, as student and reflection model."""
    goto(page, "Models")
    add_model(page, "stub-small", base_url)
    add_model(page, "stub-large", base_url)
    pick(page, "models.student.w", "stub-small")
    pick(page, "models.reflection.w", "stub-large")


TRUNCATED_JS = """() => {
  const cut = [];
  const clipper = el => {  // the nearest box that hides what overflows it
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      const x = getComputedStyle(a).overflowX;
      if (x === 'hidden' || x === 'clip') return a;
      // a box that scrolls sideways hides what a person would have to scroll to (a segmented control's last
      // option); code blocks scroll by design
      if (x === 'auto' || x === 'scroll') return el.closest('pre, code') ? null : a;
    }
    return null;
  };
  for (const el of document.querySelectorAll('body *')) {
    if (!el.offsetParent || el.closest('svg')) continue;
    const box = el.getBoundingClientRect();
    // hidden, or a skip link
    if (box.width < 4 || box.height < 4 || box.right <= 0 || box.left >= innerWidth) continue;
    const own = [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!own) continue;
    const text = el.innerText.trim();
    const cs = getComputedStyle(el);
    if (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1) {
      cut.push(text.slice(0, 100));
      continue;
    }
    const range = document.createRange();
    range.selectNodeContents(el);
    const words = range.getBoundingClientRect();
    const c = clipper(el);
    if (!c || words.width === 0) continue;
    const edge = c.getBoundingClientRect();
    if (edge.width >= 4 && (words.right > edge.right + 1 || words.left < edge.left - 1)) cut.push(text.slice(0, 100));
  }
  return [...new Set(cut)];
}"""


def truncated(page) -> list[str]:
    """Texts the page shows cut off: text that ends in a CSS ellipsis because it does not fit (Streamlit's metrics,
    labels, tabs), or that runs past the edge of the box that clips it (a select box's choice, a multiselect's
    chips). Canvases (st.dataframe's cells) and charts' SVG are not seen."""
    return page.evaluate(TRUNCATED_JS)


def charts_drawn(page, timeout_ms: int = 15_000) -> None:
    """Wait until no element is a loading placeholder and every plotly chart has drawn (after a resize Streamlit
    redraws the page: its skeletons stand where metrics and charts will be)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stSkeleton\"], [data-testid=\"stSkeletonElement\"]')"
        " && [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(c => c.querySelector('.main-svg'))", timeout=timeout_ms)


def shots_at(page, name: str, widths=(1280, 1920), height: int = 2400) -> None:
    """Screenshots of the current page at each width (``<name>-<width>.png``, a tall window: Streamlit scrolls
    inside the page, so a full-page shot shows one screen only); fails on any truncated value. The window's
    size is restored afterwards."""
    before = page.viewport_size or {"width": 1400, "height": 1000}
    found = {}
    for width in widths:
        page.set_viewport_size({"width": width, "height": height})
        settle(page, 800)
        charts_drawn(page)
        shot(page, f"{name}-{width}")
        if cut := truncated(page):
            found[width] = cut
    page.set_viewport_size(before)
    settle(page, 300)
    assert not found, f"{name}: values cut off at {found}"


def widget_text(page, widget_key: str) -> str:
    """What a widget shows, its inputs' values included (a select box shows its choice in an input)."""
    container = key(page, widget_key)
    container.wait_for()
    values = container.evaluate("el => [...el.querySelectorAll('input')].map(i => i.value || "
                                "i.getAttribute('aria-label') || '').join(' ')")
    return f"{container.inner_text()} {values}"


def upload_table(page, csv: Path, mode: str) -> None:
    """Task: upload ``csv`` as a table and pick how it is read (``mode``: the words of one of the page's choices)."""
    goto(page, "Task")
    key(page, "task.kind.w").get_by_text("Upload a table", exact=True).click()
    settle(page)
    key(page, "task.file.w").locator('input[type="file"]').set_input_files(str(csv))
    settle(page, 1500)
    key(page, "task.file.mode").get_by_text(mode, exact=False).click()
    settle(page, 1500)


def start_custom_gepa(page, calls: int) -> None:
    """Optimize: a custom budget of ``calls`` metric calls, started (the caller waits for its result)."""
    goto(page, "Optimize")
    key(page, "optimize.budget").get_by_text("custom", exact=True).click()
    settle(page)
    key(page, "optimize.max_calls").locator("input").fill(str(calls))
    page.keyboard.press("Enter")
    settle(page)
    key(page, "optimize.start").locator("button").click()


def download_report(page, path: Path, timeout_ms: int = 60_000) -> str:
    """Compare: build the report, download it to ``path``; its HTML."""
    from playwright.sync_api import expect

    key(page, "compare.report.build").locator("button").click()
    button = key(page, "compare.report.download").locator("button")
    expect(button).to_be_visible(timeout=timeout_ms)
    with page.expect_download(timeout=60_000) as saved:
        button.click()
    saved.value.save_as(path)
    return Path(path).read_text(encoding="utf-8")
