"""What the browser tests share: the dashboard as a `streamlit run` process, Chromium, and how to drive Streamlit's
widgets by their keys. Screenshots go to ``test-output/e2e/`` (or ``$E2E_SCREENSHOTS``)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("E2E_SCREENSHOTS", ROOT / "test-output" / "e2e"))

NEEDS_CHROMIUM = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


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




TRUNCATED_JS = """() => {
  const cut = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!el.offsetParent || el.children.length > 2) continue;
    const cs = getComputedStyle(el);
    if (cs.textOverflow !== 'ellipsis' && !el.innerText.trim().endsWith('…')) continue;
    if (el.scrollWidth > el.clientWidth + 1 || el.innerText.trim().endsWith('…')) {
      const text = el.innerText.trim();
      if (text) cut.push(text.slice(0, 100));
    }
  }
  return [...new Set(cut)];
}"""


def truncated(page) -> list[str]:
    """Texts the page shows cut off: an element styled to end in an ellipsis whose text does not fit, or that
    ends in "…" itself (Streamlit's metrics, labels and tabs cut with CSS; canvases such as st.dataframe are not
    seen)."""
    return page.evaluate(TRUNCATED_JS)


def shots_at(page, name: str, widths=(1280, 1920)) -> None:
    """Screenshots of the current page at each width (``<name>-<width>.png``); fails on any truncated value."""
    height = page.viewport_size["height"] if page.viewport_size else 1000
    found = {}
    for width in widths:
        page.set_viewport_size({"width": width, "height": height})
        settle(page, 800)
        shot(page, f"{name}-{width}")
        if cut := truncated(page):
            found[width] = cut
    assert not found, f"{name}: values cut off at {found}"
