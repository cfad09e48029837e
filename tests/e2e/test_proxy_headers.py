"""Who may use the dashboard behind a signing-in proxy (ui.auth.from_proxy), in a real browser.

A real reverse proxy on loopback (tests/proxy_stub.py) stands in front of ``streamlit run app.py`` as Databricks Apps'
does, naming the signed-in user in ``X-Forwarded-*`` headers on every request, the websocket's included. With
``GEPA_STUDIO_TRUST_PROXY_HEADERS=databricks`` an allowed user gets the pages and is who starts a job; someone not on
the allow-list gets the refusal naming them; a browser reaching the server without the proxy gets no pages. With the
setting off, the same headers sent straight to the server change nothing: the user is "local" as on any loopback
server. The user's forwarded access token is found nowhere afterwards: not on a page, the server's log or the data
dir.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.browser import dashboard, goto, key, settle, shot, streamlit_app
from tests.e2e.test_every_state import catalog_of
from tests.proxy_stub import TOKEN, IdentityProxy, identity_headers

pytestmark = pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it

ALLOWED = "alice@example.org, @team.example.org"
ALICE, MALLORY = "alice@example.org", "mallory@example.org"
BASELINE = "/?compare=stub-small&train=2&val=1&test=2"  # one stub model, 10 test examples
SIGNED_IN = f"Signed in as {ALICE} (through Databricks Apps)"


def sidebar(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def start_baseline(page, jobs) -> str:
    """Baselines: start the model the URL chose; the id of the job it queued."""
    goto(page, "Baselines")
    before = {j.id for j in jobs.list(reap=False)}
    for _ in range(2):  # a click that lands during a rerun can be lost: once more
        key(page, "baselines.start").locator("button").click()
        deadline = time.time() + 15
        while time.time() < deadline:
            if new := [j.id for j in jobs.list(reap=False) if j.id not in before]:
                settle(page)
                return new[0]
            time.sleep(0.3)
    raise AssertionError("no baseline job queued")


def job_ended(jobs, job_id: str, timeout_s: float = 120):
    deadline = time.time() + timeout_s
    while (job := jobs.get(job_id, reap=False)).state in ("queued", "running") and time.time() < deadline:
        time.sleep(0.5)
    return job


def where_seen(secret: str, page_texts: list[str], *places: Path) -> list[str]:
    """Where ``secret`` shows up: a page's text, or a file under one of ``places``."""
    found = [f"page {i}" for i, text in enumerate(page_texts) if secret in text]
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        found += [str(p) for p in files if secret.encode() in p.read_bytes()]
    return found


@pytest.mark.timeout(240)
def test_proxy_identity_is_trusted_only_when_the_setting_says_so(tmp_path, stub, monkeypatch):
    from core.jobs import JobManager
    from core.tracking.store import RunStore

    t0 = time.time()
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(tmp_path / "none.toml"))
    on, off = tmp_path / "on", tmp_path / "off"
    stores = {}
    for where in (on, off):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{where / 'studio' / 'mlflow.db'}")
        stores[where] = catalog_of(where / "studio", stub.base_url)
    texts = []

    with streamlit_app(on, GEPA_STUDIO_TRUST_PROXY_HEADERS="databricks", GEPA_STUDIO_ALLOWED_USERS=ALLOWED) as url, \
            IdentityProxy(int(url.rsplit(":", 1)[1]), user=ALICE) as proxy:
        jobs = JobManager(stores[on])
        with dashboard(proxy.url + BASELINE, "failure-proxy-allowed") as page:  # alice, through the proxy
            assert SIGNED_IN in sidebar(page)
            assert not key(page, "auth.logout").count(), "signing out is the workspace's business"
            alices_job = start_baseline(page, jobs)
            shot(page, "proxy-allowed")
            texts.append(page.locator("body").inner_text())
        assert proxy.upgrades >= 1, "the browser's websocket went through the proxy"

        proxy.user = MALLORY
        with dashboard(proxy.url, "failure-proxy-refused") as page:
            page.get_by_text(f"You are signed in as {MALLORY}, who is not allowed to use this GEPA Studio.").wait_for()
            assert not page.locator('[data-testid="stSidebarNav"]').count(), "no page list is offered"
            assert not key(page, "auth.logout").count()
            texts.append(page.locator("body").inner_text())

        with dashboard(url, "failure-proxy-bypassed") as page:  # straight to the server: nobody named
            page.get_by_text("this request came with no identity from the proxy, so it serves no pages").wait_for()
            assert not page.locator('[data-testid="stSidebarNav"]').count()
            texts.append(page.locator("body").inner_text())
        on_log = on / "streamlit.log"

    with streamlit_app(off, GEPA_STUDIO_TRUST_PROXY_HEADERS="", GEPA_STUDIO_ALLOWED_USERS=ALLOWED) as url:
        jobs_off = JobManager(stores[off])
        with dashboard(url + BASELINE, "failure-proxy-off") as page:
            page.set_extra_http_headers(dict(identity_headers(ALICE)))  # the same headers, sent by the browser itself
            page.reload(wait_until="networkidle")
            page.get_by_role("heading", name="GEPA Studio").first.wait_for()
            settle(page)
            assert "Signed in as" not in sidebar(page)
            assert ALICE not in page.locator("body").inner_text()
            locals_job = start_baseline(page, jobs_off)
            texts.append(page.locator("body").inner_text())

    alices, locals_ = job_ended(jobs, alices_job), job_ended(jobs_off, locals_job)
    assert (alices.started_by, locals_.started_by) == (ALICE, "local")
    for job, settings, who in ((alices, stores[on], ALICE), (locals_, stores[off], "local")):
        assert job.state == "succeeded", (job.state, job.error)
        runs = RunStore(settings).list_runs(kind="baseline")  # the job's one run: its server ran no other
        assert list(runs["started_by"]) == [who]
    assert not where_seen(TOKEN, texts, on_log, off / "streamlit.log", on / "studio", off / "studio")
    print(f"proxy headers walked in {time.time() - t0:.0f} s")
