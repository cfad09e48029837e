"""Who may use the dashboard behind a trusted signing-in proxy (ui.auth.from_proxy): Databricks Apps' proxy.

The rule without Streamlit: off by default, and then no header is even read; on, the forwarded e-mail (else the user
name) meets the same allow-list as a login's e-mail. Then the app under AppTest, whose sessions carry no request
headers (a browser that bypassed the proxy) unless the one function that reads them is replaced; and a scan of the
source for code that reads a request's headers wholesale (the proxy forwards the user's own token among them).
The browser through a real proxy: tests/e2e/test_proxy_headers.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.runtime.context import StreamlitHeaders
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP, assert_clean, texts
from tests.ui.test_auth import NO_AUTH, gate_only, run_app
from ui import auth

pytestmark = pytest.mark.usefixtures("no_auth_settings")

ROOT = Path(APP).parent
ON = "databricks"
ALLOWED = "alice@example.org, @team.example.org"
IDENTITY = ("X-Forwarded-Email", "X-Forwarded-Preferred-Username")


class Sent:
    """A request's headers as Streamlit holds them, and which names were asked for."""

    def __init__(self, *pairs: tuple[str, str]) -> None:
        self.headers = StreamlitHeaders(pairs)
        self.asked: list[str] = []

    def __call__(self, names):
        self.asked += names
        return {name: self.headers.get_all(name) for name in names}


def never(names):
    raise AssertionError(f"headers read while the setting is off: {names}")


def proxied(*pairs: tuple[str, str], trust: str | None = ON, allowed: str | None = ALLOWED) -> auth.Access | None:
    return auth.from_proxy(Sent(*pairs), trust=trust, allowed_users=allowed)


def email(value: str) -> tuple[str, str]:
    return ("X-Forwarded-Email", value)




# The rule, without Streamlit -------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "", "0", "false", "no", "off", " OFF "])
def test_off_by_default_and_then_no_header_is_read(value):
    assert auth.from_proxy(never, trust=value, allowed_users=ALLOWED) is None


@pytest.mark.parametrize("value", ["1", "true", "yes", "nginx", "databricks-apps"])
def test_a_value_that_names_no_known_proxy_serves_no_pages(value):
    found = auth.from_proxy(never, trust=value, allowed_users=ALLOWED)
    assert found is not None and found.mode == "refused" and not found.granted
    assert auth.TRUST_PROXY_HEADERS in found.message and repr(value) in found.message
    assert "`databricks`" in found.hint


@pytest.mark.parametrize("value", ["databricks", "Databricks", " DATABRICKS "])
def test_an_allowed_user_is_let_in_and_is_who_starts_jobs(value):
    sent = Sent(email("alice@example.org"), ("X-Forwarded-Access-Token", "dapi-secret"))
    found = auth.from_proxy(sent, trust=value, allowed_users=ALLOWED)
    assert (found.mode, found.user, found.proxy, found.granted) == ("signed_in", "alice@example.org", ON, True)
    assert sent.asked == list(IDENTITY), "only the identity headers are read, never the forwarded token"


@pytest.mark.parametrize(("forwarded", "allowed", "granted"), [
    ("alice@example.org", "alice@example.org, bob@example.org", True),
    ("Alice@Example.ORG", "alice@example.org", True),
    ("alice@example.org", "ALICE@EXAMPLE.ORG", True),
    ("carol@team.example.org", "@team.example.org", True),
    ("Carol@TEAM.example.org", "@team.example.org", True),
    ("mallory@example.org", "alice@example.org, @team.example.org", False),
    ("mallory@evil-team.example.org", "@team.example.org", False),
    ("alice@example.org.evil.test", "alice@example.org", False),
    ("notbob@example.org", "bob@example.org", False),
    ("alice@example.org", "['alice@example.org', 'bob@example.org']", True),  # a TOML list, as a string
])
def test_the_allow_list_matches_as_it_does_for_a_login(forwarded, allowed, granted):
    found = proxied(email(forwarded), allowed=allowed)
    login = auth.decide(address="0.0.0.0", auth={"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s",
                                                 "client_id": "c", "client_secret": "s", "server_metadata_url": "u"},
                        user={"is_logged_in": True, "email": forwarded}, allowed_users=allowed)
    assert found.granted is granted is login.granted
    assert found.user == (forwarded if granted else "")


def test_someone_not_on_the_list_gets_the_refusal_a_login_gets():
    found = proxied(email("mallory@example.org"))
    assert found.mode == "not_allowed" and not found.user and found.proxy == ON
    assert found.message == "You are signed in as mallory@example.org, who is not allowed to use this GEPA Studio."
    assert auth.ALLOWED_USERS in found.hint


@pytest.mark.parametrize("pairs", [
    (), (email(""),), (email("   "),), (("X-Forwarded-User", "4242@1234567890"),),
    (("X-Forwarded-Access-Token", "dapi-secret"),), (("X-Forwarded-Preferred-Username", " "),)])
def test_no_identity_from_the_proxy_serves_no_pages(pairs):
    found = proxied(*pairs)
    assert found.mode == "refused" and not found.granted
    assert "no identity from the proxy" in found.message and auth.TRUST_PROXY_HEADERS in found.hint


def test_the_user_name_stands_in_when_no_e_mail_is_forwarded():
    assert proxied(("X-Forwarded-Preferred-Username", "carol@team.example.org")).user == "carol@team.example.org"
    assert proxied(("X-Forwarded-Preferred-Username", "carol")).mode == "not_allowed"  # not an e-mail: on no list
    both = proxied(email("alice@example.org"), ("X-Forwarded-Preferred-Username", "carol@team.example.org"))
    assert both.user == "alice@example.org", "the e-mail wins"


def test_header_names_are_matched_in_any_case():
    assert proxied(("x-forwarded-email", "alice@example.org")).user == "alice@example.org"
    plain = auth.from_proxy(lambda names: {"x-FORWARDED-email": "alice@example.org"}, trust=ON, allowed_users=ALLOWED)
    assert plain.user == "alice@example.org"  # a plain mapping of one value per name does too


def test_two_different_users_in_one_request_are_refused():
    found = proxied(email("alice@example.org"), email("mallory@example.org"))
    assert found.mode == "refused" and "more than one user" in found.message
    assert proxied(email("alice@example.org"), email("alice@example.org")).user == "alice@example.org"


@pytest.mark.parametrize("allowed", [None, "", " , "])
def test_an_empty_allow_list_lets_nobody_in(allowed):
    found = proxied(email("alice@example.org"), allowed=allowed)
    assert found.mode == "refused" and auth.ALLOWED_USERS in found.message


# The app under AppTest ------------------------------------------------------------------------------


def _who() -> None:
    import streamlit as st

    from ui import auth as gate

    try:
        st.text(gate.current_user())
    except Exception as exc:  # noqa: BLE001 - the test reads the error's type and message
        st.text(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("page", ["home", "models"])
def test_with_the_setting_on_a_session_without_the_headers_gets_no_page(empty, bind, monkeypatch, page):
    bind("127.0.0.1")  # even on loopback: only the proxy says who it is
    monkeypatch.setenv(auth.TRUST_PROXY_HEADERS, ON)
    monkeypatch.setenv(auth.ALLOWED_USERS, ALLOWED)
    at = run_app(page)
    gate_only(at)
    assert texts(at, "error") == ["GEPA Studio trusts the Databricks Apps proxy (GEPA_STUDIO_TRUST_PROXY_HEADERS="
                                  "databricks), but this request came with no identity from the proxy, so it serves "
                                  "no pages."]
    assert not at.button, "no sign-in or sign-out button: the workspace signs people in"


def test_behind_the_proxy_an_allowed_user_gets_the_page_on_any_address(empty, bind, monkeypatch):
    bind("0.0.0.0")  # no [auth], no opt-out: only the proxy's word lets anyone in
    monkeypatch.setenv(auth.TRUST_PROXY_HEADERS, ON)
    monkeypatch.setenv(auth.ALLOWED_USERS, ALLOWED)
    monkeypatch.setattr(auth, "_request_headers", Sent(email("carol@team.example.org")))
    at = run_app("models")
    assert_clean(at)
    assert "Models" in [t.value for t in at.title]
    assert "Signed in as carol@team.example.org (through Databricks Apps)" in texts(at.sidebar, "caption")
    assert not [b for b in at.button if (b.key or "").startswith("auth.")], "no Sign out"
    assert not any("No login" in w for w in texts(at, "warning"))
    who = AppTest.from_function(_who, default_timeout=30)
    who.secrets = NO_AUTH
    assert who.run().text[0].value == "carol@team.example.org"


def test_behind_the_proxy_someone_not_on_the_list_is_refused_by_name(empty, bind, monkeypatch):
    bind("0.0.0.0")
    monkeypatch.setenv(auth.TRUST_PROXY_HEADERS, ON)
    monkeypatch.setenv(auth.ALLOWED_USERS, ALLOWED)
    monkeypatch.setattr(auth, "_request_headers", Sent(email("mallory@example.org")))
    at = run_app("models")
    gate_only(at)
    assert texts(at, "error") == ["You are signed in as mallory@example.org, who is not allowed to use this "
                                  "GEPA Studio."]
    assert not at.button, "no Sign out: the workspace signs people in and out"


def test_with_the_setting_off_the_headers_are_never_read(empty, bind, monkeypatch):
    bind("127.0.0.1")
    monkeypatch.setenv(auth.ALLOWED_USERS, ALLOWED)
    monkeypatch.setattr(auth, "_request_headers", never)
    at = run_app("models")
    assert_clean(at)
    assert "Models" in [t.value for t in at.title]
    assert not [c for c in texts(at.sidebar, "caption") if "Signed in as" in c]
    who = AppTest.from_function(_who, default_timeout=30)
    who.secrets = NO_AUTH
    assert who.run().text[0].value == "local"


# The source ----------------------------------------------------------------------------------------------


READ_ONE = re.compile(r"context\.headers\.get(_all)?\(")


def test_no_code_reads_a_requests_headers_wholesale():
    """``st.context.headers`` holds every header of the request, a proxy's forwarded access token included: code
    may ask it for one header by name, never copy, list, log or show it whole."""
    sources = [ROOT / "app.py", *[p for d in ("core", "ui", "pages") for p in (ROOT / d).rglob("*.py")]]
    wholesale, by_name = [], []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for hit in re.finditer(r"context\.headers", text):
            line = text.count("\n", 0, hit.start()) + 1
            (by_name if READ_ONE.match(text, hit.start()) else wholesale).append(f"{path.relative_to(ROOT)}:{line}")
    assert any(p.startswith("ui/auth.py") for p in by_name), "the scan lost its way"
    assert not wholesale, f"request headers read whole (the forwarded token with them): {wholesale}"
