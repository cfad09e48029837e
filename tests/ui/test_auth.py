"""Who may use the dashboard (ui.auth): loopback is open, anywhere else needs login and the allow-list.

The rule itself is tested without Streamlit; the app under AppTest with ``server.address`` set as
``--server.address`` would set it; and once as a real ``streamlit run --server.address 0.0.0.0``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config.errors import ConfigError
from tests.ports import free_port, wait_http
from tests.ui.conftest import APP, assert_clean, texts
from ui import auth
from ui.state import ROUTED

ROOT = Path(APP).parent
PAGES = ["home", "models", "task", "baselines", "optimize", "compare", "optimization", "prompts", "history"]
TITLES = {"home": "GEPA Studio", "models": "Models", "task": "Task", "baselines": "Baselines",
          "optimize": "Optimize", "compare": "Compare", "optimization": "Optimization", "prompts": "Prompts",
          "history": "History"}
HOW_TO_KEYS = ("[auth]", "redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url",
               auth.ALLOWED_USERS, auth.ALLOW_UNAUTHENTICATED)
AUTH = {"redirect_uri": "http://studio.example.org:8501/oauth2callback", "cookie_secret": "s" * 64,
        "client_id": "studio", "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration"}
NO_AUTH = {"GEPA_STUDIO_TEST": "a secrets file without [auth]"}  # AppTest swaps st.secrets only for a non-empty dict


pytestmark = pytest.mark.usefixtures("no_auth_settings")


def run_app(page: str = "home", *, secrets: dict | None = None, user: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets = secrets or NO_AUTH
    at.user = user if user is not None else {}
    at.switch_page(f"pages/{page}.py")
    return at.run()


def gate_only(at: AppTest) -> None:
    """The sign-in / refusal page only: no app page, no shared sidebar, and app.py did not mark the session routed."""
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["GEPA Studio"]
    assert not [b for b in at.button if b.key == "app.refresh"], "the app's sidebar (and so a page) was served"
    assert ROUTED not in at.session_state, "a page run alone would now skip the gate (see ui.routing)"


# The rule, without Streamlit -------------------------------------------------------------------


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), (None, False), ("", False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("studio.example.org", False), ("unix:///tmp/studio.sock", False)])
def test_only_loopback_addresses_count_as_this_machine(address, loopback):
    assert auth.is_loopback(address) is loopback


def test_loopback_needs_no_login_even_with_auth_configured():
    found = auth.decide(address="127.0.0.1", auth=AUTH, user={}, allowed_users="")
    assert (found.mode, found.user, found.granted) == ("local", "local", True)


def test_require_login_asks_for_it_on_loopback_too():
    found = auth.decide(address="127.0.0.1", auth=AUTH, user={"is_logged_in": False},
                        allowed_users="a@example.org", require_login="1")
    assert found.mode == "sign_in"


@pytest.mark.parametrize("address", [None, "0.0.0.0", "10.0.0.5", "unix:///tmp/s.sock"])
def test_beyond_loopback_without_auth_is_refused_with_how_to_configure_login(address):
    found = auth.decide(address=address, auth=None, user={})
    assert found.mode == "refused" and not found.granted and not found.user
    assert "no login is configured" in found.message
    for key in HOW_TO_KEYS:
        assert key in found.hint


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_the_explicit_opt_out_serves_with_a_warning(value):
    found = auth.decide(address="0.0.0.0", auth=None, user={}, allow_unauthenticated=value)
    assert (found.mode, found.user) == ("unauthenticated", "unauthenticated")
    assert "No login" in found.message and auth.ALLOW_UNAUTHENTICATED in found.message


@pytest.mark.parametrize("value", [None, "", "0", "false", "no"])
def test_anything_else_is_not_an_opt_out(value):
    assert auth.decide(address="0.0.0.0", auth=None, user={}, allow_unauthenticated=value).mode == "refused"


def test_configured_login_wins_over_the_opt_out():
    found = auth.decide(address="0.0.0.0", auth=AUTH, user={}, allowed_users="a@example.org",
                        allow_unauthenticated="1")
    assert found.mode == "sign_in" and found.providers == ("default",)


@pytest.mark.parametrize(("drop", "named"), [
    ("redirect_uri", "redirect_uri"), ("cookie_secret", "cookie_secret"), ("client_id", "client_id"),
    ("client_secret", "client_secret"), ("server_metadata_url", "server_metadata_url")])
def test_an_incomplete_auth_section_is_refused_naming_what_it_lacks(drop, named):
    section = {k: v for k, v in AUTH.items() if k != drop}
    found = auth.decide(address="0.0.0.0", auth=section, user={"is_logged_in": True, "email": "a@example.org"},
                        allowed_users="a@example.org")
    assert found.mode == "refused" and named in found.message


def test_a_redirect_uri_streamlit_would_reject_is_refused():
    section = {**AUTH, "redirect_uri": "http://studio.example.org:8501/"}
    found = auth.decide(address="0.0.0.0", auth=section, user={}, allowed_users="a@example.org")
    assert found.mode == "refused" and "/oauth2callback" in found.message


def test_named_providers_are_each_offered():
    section = {"redirect_uri": AUTH["redirect_uri"], "cookie_secret": "x" * 40,
               "google": {k: AUTH[k] for k in auth.PROVIDER_KEYS},
               "okta": {k: AUTH[k] for k in auth.PROVIDER_KEYS},
               "half": {"client_id": "x"}}
    found = auth.decide(address="0.0.0.0", auth=section, user={"is_logged_in": False}, allowed_users="@x.org")
    assert found.mode == "sign_in" and found.providers == ("google", "okta")


def test_login_without_an_allow_list_is_refused():
    found = auth.decide(address="0.0.0.0", auth=AUTH, user={"is_logged_in": True, "email": "a@example.org"},
                        allowed_users=" , ")
    assert found.mode == "refused" and auth.ALLOWED_USERS in found.message


def test_login_without_authlib_is_refused_with_the_install_line():
    found = auth.decide(address="0.0.0.0", auth=AUTH, user={}, allowed_users="a@example.org", authlib=False)
    assert found.mode == "refused" and f"pip install {auth.AUTHLIB_PIN}" in found.message


@pytest.mark.parametrize(("email", "allowed", "mode"), [
    ("alice@example.org", "alice@example.org, bob@example.org", "signed_in"),
    ("Alice@Example.ORG", "alice@example.org", "signed_in"),
    ("carol@team.example.org", "@team.example.org", "signed_in"),
    ("mallory@example.org", "alice@example.org, @team.example.org", "not_allowed"),
    ("mallory@evil-team.example.org", "@team.example.org", "not_allowed"),
    ("alice@example.org.evil.test", "alice@example.org", "not_allowed"),
    ("notbob@example.org", "bob@example.org", "not_allowed"),
    ("alice@example.org", "['alice@example.org', 'bob@example.org']", "signed_in"),  # a TOML list, as a string
])
def test_the_allow_list_matches_whole_addresses_or_whole_domains(email, allowed, mode):
    found = auth.decide(address="0.0.0.0", auth=AUTH, user={"is_logged_in": True, "email": email},
                        allowed_users=allowed)
    assert found.mode == mode
    assert found.user == (email if mode == "signed_in" else "")


def test_an_unverified_or_missing_email_is_not_allowed():
    base = dict(address="0.0.0.0", auth=AUTH, allowed_users="alice@example.org")
    unverified = auth.decide(user={"is_logged_in": True, "email": "alice@example.org", "email_verified": False},
                             **base)
    assert unverified.mode == "not_allowed" and "not verified" in unverified.message
    assert auth.decide(user={"is_logged_in": True}, **base).mode == "not_allowed"


def test_access_checks_itself():
    with pytest.raises(ValueError):
        auth.Access("local")
    with pytest.raises(ValueError):
        auth.Access("refused", user="local")
    with pytest.raises(ValueError):
        auth.Access("sign_in")


# The app under AppTest ------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_bound_beyond_loopback_without_auth_no_page_is_served(empty, bind, page):
    bind("0.0.0.0")
    at = run_app(page)
    gate_only(at)
    assert texts(at, "error") == ["GEPA Studio listens on 0.0.0.0, beyond this machine, and no login is "
                                  "configured, so it serves no pages."]
    how_to = " ".join(texts(at, "markdown"))
    for key in HOW_TO_KEYS:
        assert key in how_to


@pytest.mark.cold_server
def test_a_deep_link_on_a_cold_server_cannot_skip_the_gate(empty, bind):
    bind("0.0.0.0")
    at = run_app("models")  # legacy pages/ mode would run pages/models.py alone here
    gate_only(at)
    assert "Models" not in [t.value for t in at.title]


@pytest.mark.parametrize("page", PAGES)
def test_the_opt_out_shows_the_warning_on_every_page(empty, bind, monkeypatch, page):
    bind("0.0.0.0")
    monkeypatch.setenv(auth.ALLOW_UNAUTHENTICATED, "1")
    at = run_app(page)
    assert_clean(at)
    assert TITLES[page] in [t.value for t in at.title]
    assert any("No login: anyone who can reach this server" in w for w in texts(at, "warning"))


@pytest.mark.parametrize("page", PAGES)
def test_on_loopback_there_is_neither_gate_nor_warning(empty, bind, page):
    bind("127.0.0.1")
    at = run_app(page, secrets={"auth": AUTH})  # even with login configured: on loopback nobody signs in
    assert_clean(at)
    assert TITLES[page] in [t.value for t in at.title]
    assert at.button(key="app.refresh")
    assert not any("No login" in w for w in texts(at, "warning"))
    assert not [b for b in at.button if (b.key or "").startswith("auth.")]


def test_the_shipped_config_listens_on_loopback():
    import tomllib

    shipped = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert auth.is_loopback(shipped["server"]["address"])


def test_with_login_configured_nobody_signed_in_sees_a_sign_in_button(empty, bind, monkeypatch):
    bind("0.0.0.0")
    monkeypatch.setenv(auth.ALLOWED_USERS, "alice@example.org")
    at = run_app("models", secrets={"auth": AUTH}, user={"is_logged_in": False})
    gate_only(at)
    assert [b.label for b in at.button] == ["Sign in"]
    assert at.button(key="auth.login.default")
    assert not at.error


def test_a_signed_in_user_not_on_the_allow_list_is_refused(empty, bind, monkeypatch):
    bind("0.0.0.0")
    monkeypatch.setenv(auth.ALLOWED_USERS, "alice@example.org, @team.example.org")
    at = run_app("models", secrets={"auth": AUTH}, user={"is_logged_in": True, "email": "mallory@example.org"})
    gate_only(at)
    assert texts(at, "error") == ["You are signed in as mallory@example.org, who is not allowed to use this "
                                  "GEPA Studio."]
    assert auth.ALLOWED_USERS in " ".join(texts(at, "markdown"))
    assert at.button(key="auth.logout")


def test_an_allowed_user_gets_the_page_and_sees_who_is_signed_in(empty, bind, monkeypatch):
    bind("0.0.0.0")
    monkeypatch.setenv(auth.ALLOWED_USERS, "alice@example.org, @team.example.org")
    at = run_app("models", secrets={"auth": AUTH}, user={"is_logged_in": True, "email": "carol@team.example.org"})
    assert_clean(at)
    assert "Models" in [t.value for t in at.title]
    assert "Signed in as carol@team.example.org" in texts(at.sidebar, "caption")
    assert at.button(key="auth.logout")
    assert not any("No login" in w for w in texts(at, "warning"))


def test_the_allow_list_is_read_from_the_secrets_file_too(empty, bind, monkeypatch, tmp_path):
    bind("0.0.0.0")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'{auth.ALLOWED_USERS} = ["alice@example.org"]\n', encoding="utf-8")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(secrets))
    at = run_app("models", secrets={"auth": AUTH}, user={"is_logged_in": True, "email": "alice@example.org"})
    assert_clean(at)
    assert "Models" in [t.value for t in at.title]


def _who() -> None:
    import streamlit as st

    from ui import auth as gate

    try:
        st.text(gate.current_user())
    except Exception as exc:  # noqa: BLE001 - the test reads the error's type and message
        st.text(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize(("address", "env", "user", "expected"), [
    ("127.0.0.1", {}, {}, "local"),
    ("0.0.0.0", {auth.ALLOW_UNAUTHENTICATED: "1"}, {}, "unauthenticated"),
    ("0.0.0.0", {auth.ALLOWED_USERS: "@example.org"}, {"is_logged_in": True, "email": "alice@example.org"},
     "alice@example.org"),
    ("0.0.0.0", {}, {}, "ConfigError: GEPA Studio listens on 0.0.0.0"),
    ("0.0.0.0", {auth.ALLOWED_USERS: "@example.org"}, {"is_logged_in": False}, "ConfigError: GEPA Studio is shared"),
])
def test_current_user_names_who_starts_a_job(empty, bind, monkeypatch, address, env, user, expected):
    bind(address)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_function(_who, default_timeout=30)
    at.secrets = {"auth": AUTH} if auth.ALLOWED_USERS in env else NO_AUTH
    at.user = user
    at.run()
    assert not at.exception
    assert at.text[0].value.startswith(expected)


def test_current_user_outside_a_granted_session_is_a_studio_error(bind, monkeypatch, tmp_path):
    bind("0.0.0.0")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(tmp_path / "none.toml"))  # not the developer's own settings
    with pytest.raises(ConfigError):
        auth.current_user()


# A real server ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposed_server(tmp_path_factory):
    """``streamlit run app.py --server.address 0.0.0.0`` with no login configured (and no opt-out)."""
    tmp = tmp_path_factory.mktemp("exposed")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in (auth.ALLOWED_USERS, auth.ALLOW_UNAUTHENTICATED, auth.REQUIRE_LOGIN, auth.TRUST_PROXY_HEADERS)}
    env.update(GEPA_STUDIO_DATA_DIR=str(tmp / "studio"),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'studio' / 'mlflow.db'}",
               GEPA_STUDIO_SECRETS=str(tmp / "none.toml"), PYTHONPATH=str(ROOT))
    log = tmp / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.address", "0.0.0.0", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--secrets.files", str(tmp / "none.toml"),  # not the developer's own secrets.toml
             "--logger.hideWelcomeMessage", "true",  # no external-IP lookup for the welcome message
             "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            assert wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=60), log.read_text()
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


def _listening_on_every_interface(port: int) -> bool:
    """Is a socket listening on 0.0.0.0:port (IPv4 wildcard), per /proc/net/tcp?"""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if local == f"00000000:{port:04X}" and state == "0A":
            return True
    return False


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
@pytest.mark.slow
def test_a_real_server_starts_bound_to_every_interface(exposed_server):
    assert _listening_on_every_interface(exposed_server)


@pytest.mark.e2e  # Chromium: tests/conftest.py skips, or fails in CI, without it
def test_a_real_server_shows_only_the_gate_in_a_browser(exposed_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            page = browser.new_page()
            for path in ("models", ""):  # a deep link first, on the fresh server (legacy pages/ mode), then home
                page.goto(f"http://127.0.0.1:{exposed_server}/{path}", wait_until="networkidle")
                page.get_by_text("no login is configured, so it serves no pages").wait_for(timeout=30_000)
                page.locator("code").filter(has_text="cookie_secret").first.wait_for(timeout=10_000)  # drawn late
                body = page.locator("body").inner_text()
                assert "redirect_uri" in body and "cookie_secret" in body and "[auth]" in body
                assert page.get_by_role("heading", name="Models", exact=True).count() == 0
                assert page.locator('[data-testid="stSidebarNav"]').count() == 0, "no page list is offered"
                assert not page.locator("div.st-key-app-refresh").count()
        finally:
            browser.close()
