"""Who may use the dashboard: anyone on this machine when it listens on loopback, otherwise only
allowed people signed in through Streamlit's OIDC login.

Anyone who can open the dashboard can spend the configured API keys, add a model whose base URL
makes the server fetch any address, and load a task from any URL. So:

- bound to loopback (``server.address = "127.0.0.1"``, the default in ``.streamlit/config.toml``):
  no login; the user is ``"local"``;
- bound elsewhere (``--server.address 0.0.0.0``, a LAN address, a unix socket) or with
  ``GEPA_STUDIO_REQUIRE_LOGIN=1``: an ``[auth]`` section in Streamlit's ``secrets.toml`` (``st.login``)
  and an allow-list ``GEPA_STUDIO_ALLOWED_USERS`` are required; the user is the login e-mail;
- bound elsewhere without ``[auth]``: no page is served, only how to configure login, unless
  ``GEPA_STUDIO_ALLOW_UNAUTHENTICATED=1`` (behind one's own authenticating proxy), when every page
  shows a warning banner and the user is ``"unauthenticated"``;
- with ``GEPA_STUDIO_TRUST_PROXY_HEADERS=databricks`` (the dashboard runs as a Databricks App): the workspace has
  signed people in, and its proxy names them in request headers; the user is the forwarded e-mail, let in when it
  is on the allow-list, wherever the server listens. Without that setting those headers are never read, whoever
  sends them.

:func:`from_proxy` and :func:`decide` are the whole rule, without Streamlit; :func:`require_access` applies it in
``app.py``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import streamlit as st
from streamlit import config as st_config
from streamlit.auth_util import is_authlib_installed

from core.config.errors import ConfigError
from core.config.settings import get_secret

logger = logging.getLogger(__name__)

# Settings (environment first, then a top-level key of the secrets file, as every other setting).
ALLOWED_USERS = "GEPA_STUDIO_ALLOWED_USERS"  # "alice@example.com, @example.org" (a leading @: a whole domain)
ALLOW_UNAUTHENTICATED = "GEPA_STUDIO_ALLOW_UNAUTHENTICATED"  # "1": serve with no login (behind your own proxy)
REQUIRE_LOGIN = "GEPA_STUDIO_REQUIRE_LOGIN"  # "1": ask for login even on loopback (a local reverse proxy)
TRUST_PROXY_HEADERS = "GEPA_STUDIO_TRUST_PROXY_HEADERS"  # "databricks": who it is comes from that proxy's headers

AUTH_KEYS = ("redirect_uri", "cookie_secret")  # in [auth] (Streamlit 1.67, streamlit.auth_util)
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")  # in [auth] or in [auth.<provider>]
AUTHLIB_PIN = "Authlib==1.9.6"
TRUE = frozenset({"1", "true", "yes", "on"})
OFF = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class Proxy:
    """A signing-in proxy whose identity headers the studio may trust: what to call it, and the headers that name
    the user, the first one present winning. Only these are ever read from a request."""

    name: str  # the value of GEPA_STUDIO_TRUST_PROXY_HEADERS that names it
    label: str
    headers: tuple[str, ...]


# THE table of trusted proxies. Databricks Apps forwards the user's e-mail and user name (and X-Forwarded-User, an
# id, and X-Forwarded-Access-Token, the user's own token: neither is read).
PROXIES: dict[str, Proxy] = {p.name: p for p in (
    Proxy("databricks", "Databricks Apps", ("X-Forwarded-Email", "X-Forwarded-Preferred-Username")),
)}

Mode = Literal["local", "signed_in", "unauthenticated", "sign_in", "not_allowed", "refused"]
GRANTED: frozenset[Mode] = frozenset({"local", "signed_in", "unauthenticated"})

HOW_TO = f"""\
**To let a team use it**, add a login to `.streamlit/secrets.toml` (any OpenID Connect provider:
Google, Microsoft Entra, Okta, Auth0...; register `redirect_uri` with it) and restart:

```toml
# Top-level keys come before any [section]. Who may sign in: e-mails, or @domain for a whole domain.
{ALLOWED_USERS} = "alice@example.com, @example.org"

[auth]
redirect_uri = "http://<this host>:<port>/oauth2callback"
cookie_secret = "<a long random string: python -c 'import secrets; print(secrets.token_hex(32))'>"
client_id = "<from your identity provider>"
client_secret = "<from your identity provider>"
server_metadata_url = "https://accounts.google.com/.well-known/openid-configuration"
```

Streamlit's login also needs `pip install {AUTHLIB_PIN}`.

**Just for you?** Run it on loopback (`streamlit run app.py`, or `--server.address 127.0.0.1`) and reach it
through an SSH tunnel: `ssh -L 8501:127.0.0.1:8501 <this host>`.

**Behind your own authenticating proxy?** Set `{ALLOW_UNAUTHENTICATED}=1` to serve it without a login
(every page then shows a warning)."""


@dataclass(frozen=True)
class Access:
    """Whether this browser session may use the dashboard, who it is, and what to show if not."""

    mode: Mode
    user: str = ""  # "local", the login e-mail, or "unauthenticated"; "" when not granted
    message: str = ""  # what stops this session (not granted), or the banner (unauthenticated)
    hint: str = ""  # markdown: how to fix it
    providers: tuple[str, ...] = ()  # sign_in: the [auth] providers to offer ("default": the flat keys)
    address: str = ""  # where the server listens, as shown to people
    proxy: str = ""  # the PROXIES entry whose headers named this user ("databricks"); "" for Streamlit's login

    def __post_init__(self) -> None:
        if (self.mode in GRANTED) != bool(self.user):
            raise ValueError(f"Access {self.mode!r} needs a user exactly when it is granted (got {self.user!r}).")
        if self.mode == "sign_in" and not self.providers:
            raise ValueError("Access 'sign_in' needs at least one login provider.")

    @property
    def granted(self) -> bool:
        return self.mode in GRANTED


def is_loopback(address: str | None) -> bool:
    """Does a ``server.address`` value keep the server on this machine? Unset means every interface."""
    if not address or address.startswith("unix://"):  # a socket file is how a proxy exposes a server
        return False
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def login_providers(auth: Mapping[str, Any]) -> tuple[tuple[str, ...], list[str]]:
    """The usable providers of an ``[auth]`` section, and what it lacks (empty when complete)."""
    missing = [key for key in AUTH_KEYS if not auth.get(key)]
    redirect = str(auth.get("redirect_uri") or "")
    if redirect and not redirect.endswith("/oauth2callback"):
        missing.append('redirect_uri ending in "/oauth2callback"')
    providers = ["default"] if all(auth.get(key) for key in PROVIDER_KEYS) else []
    providers += [name for name, section in auth.items() if isinstance(section, Mapping) and "_" not in name
                  and all(section.get(key) for key in PROVIDER_KEYS)]
    if not providers:
        missing.append(" and ".join((", ".join(PROVIDER_KEYS[:-1]), PROVIDER_KEYS[-1]))
                       + " (in [auth], or in an [auth.<provider>] section)")
    return tuple(providers), missing


def parse_allowed(value: str | None) -> frozenset[str]:
    """An allow-list setting ("a@x.org, @y.org", or a TOML list) as lower-case entries."""
    return frozenset(t.lower() for t in re.split(r"[\s,;\[\]'\"]+", value or "") if "@" in t)


def is_allowed(email: str, allowed: frozenset[str]) -> bool:
    email = email.strip().lower()
    return email in allowed or ("@" in email and "@" + email.rsplit("@", 1)[1] in allowed)


def _on(value: str | None) -> bool:
    return (value or "").strip().lower() in TRUE


# Headers' names -> every value the request carried for each (Streamlit: ``st.context.headers.get_all(name)``).
HeaderReader = Callable[[Sequence[str]], Mapping[str, Sequence[str]]]


def from_proxy(read_headers: HeaderReader, *, trust: str | None, allowed_users: str | None) -> Access | None:
    """The access rule behind a trusted proxy, or None when ``trust`` (``GEPA_STUDIO_TRUST_PROXY_HEADERS``) is off:
    then no header is read at all and :func:`decide` applies, whoever sent them.

    When on, the proxy has signed the user in, so where the server listens does not matter; the user is the first
    of the proxy's identity headers present (the e-mail, else the user name), checked against the allow-list as a
    login's e-mail is. ``read_headers`` is asked for those headers only."""
    setting = (trust or "").strip().lower()
    if setting in OFF:
        return None
    proxy = PROXIES.get(setting)
    if proxy is None:
        return Access("refused", hint=f"Set it to {' or '.join(f'`{n}`' for n in PROXIES)}, or leave it unset.",
                      message=f"{TRUST_PROXY_HEADERS} is {trust!r}, which names no proxy GEPA Studio knows, "
                              "so it serves no pages.")
    user, problem = _forwarded_user(read_headers(proxy.headers), proxy)
    if problem:
        return Access("refused", proxy=setting, message=problem, hint=(
            f"Open GEPA Studio through its address in the workspace, which signs you in. If it does not run behind "
            f"{proxy.label}, unset {TRUST_PROXY_HEADERS}: it lets in whoever sends these headers."))
    allowed = parse_allowed(allowed_users)
    if not allowed:
        return Access("refused", proxy=setting, hint=f"Set {ALLOWED_USERS} in the app's environment (app.yaml).",
                      message=f"Nobody may use this GEPA Studio: {ALLOWED_USERS} is empty.")
    if not is_allowed(user, allowed):
        return _not_on_the_list(user, proxy=setting)
    return Access("signed_in", user=user, proxy=setting)


def _forwarded_user(sent: Mapping[str, Sequence[str]], proxy: Proxy) -> tuple[str, str]:
    """The user the proxy's headers name, or why there is none (a header sent twice with different values is
    refused: a client's own copy may have slipped past the proxy)."""
    values = {name.lower(): [v.strip() for v in ([found] if isinstance(found, str) else found) if v.strip()]
              for name, found in sent.items()}
    for name in proxy.headers:
        found = values.get(name.lower(), [])
        if len(set(found)) > 1:
            return "", f"The request named more than one user in {name}, so GEPA Studio serves no pages."
        if found:
            return found[0], ""
    return "", (f"GEPA Studio trusts the {proxy.label} proxy ({TRUST_PROXY_HEADERS}={proxy.name}), but this "
                "request came with no identity from the proxy, so it serves no pages.")


def decide(*, address: str | None, auth: Mapping[str, Any] | None, user: Mapping[str, Any],
           allowed_users: str | None = None, allow_unauthenticated: str | None = None,
           require_login: str | None = None, authlib: bool = True) -> Access:
    """The access rule, from the server's address, Streamlit's ``[auth]`` secrets and ``st.user``."""
    shown = address or "every interface (0.0.0.0)"
    if is_loopback(address) and not _on(require_login):
        return Access("local", user="local", address=shown)
    if not auth:
        return _without_login(shown, allow_unauthenticated)
    providers, missing = login_providers(auth)
    allowed = parse_allowed(allowed_users)
    problems = [f"The [auth] section of secrets.toml lacks {', '.join(missing)}."] if missing else []
    if not allowed:
        problems.append(f"Nobody may sign in: {ALLOWED_USERS} is empty.")
    if not authlib:
        problems.append(f"Streamlit's login needs the Authlib package: pip install {AUTHLIB_PIN}.")
    if problems:
        return Access("refused", address=shown, hint=HOW_TO,
                      message="Login is not fully configured, so GEPA Studio serves no pages. " + " ".join(problems))
    if not user.get("is_logged_in"):
        return Access("sign_in", address=shown, providers=providers,
                      message="GEPA Studio is shared on this network: sign in to use it.")
    return _signed_in(user, allowed, shown)


def _without_login(shown: str, allow_unauthenticated: str | None) -> Access:
    """Beyond this machine with no login configured: refused, unless unauthenticated use is asked for."""
    if _on(allow_unauthenticated):
        return Access("unauthenticated", user="unauthenticated", address=shown, message=(
            f"No login: anyone who can reach this server ({shown}) can use GEPA Studio and spend its API keys "
            f"({ALLOW_UNAUTHENTICATED} is set). Keep it behind an authenticating proxy."))
    return Access("refused", address=shown, hint=HOW_TO, message=(
        f"GEPA Studio listens on {shown}, beyond this machine, and no login is configured, "
        "so it serves no pages."))


def _signed_in(user: Mapping[str, Any], allowed: frozenset[str], shown: str) -> Access:
    """A signed-in user: in when their verified e-mail address is on the allow-list."""
    email = str(user.get("email") or "")
    if not email:
        return Access("not_allowed", address=shown, message=(
            "Your identity provider gave no e-mail address, so GEPA Studio cannot check its allow-list."),
            hint="Ask whoever runs it to request the `email` scope from the provider.")
    if user.get("email_verified") is False:
        return Access("not_allowed", address=shown, message=f"Your e-mail address {email} is not verified.",
                      hint="Verify it with your identity provider, then sign in again.")
    if not is_allowed(email, allowed):
        return _not_on_the_list(email, address=shown)
    return Access("signed_in", user=email, address=shown)


def _not_on_the_list(email: str, **where: str) -> Access:
    """Signed in (by Streamlit's login or a trusted proxy), but not on the allow-list."""
    return Access("not_allowed", message=f"You are signed in as {email}, who is not allowed to use this GEPA Studio.",
                  hint=f"Ask whoever runs it to add you to {ALLOWED_USERS}.", **where)


# Streamlit glue --------------------------------------------------------------------------------


def _auth_section() -> Mapping[str, Any] | None:
    """The ``[auth]`` section of Streamlit's secrets (where ``st.login`` reads it), if any."""
    if not st.secrets.load_if_toml_exists():
        return None
    return st.secrets.get("auth")


def _request_headers(names: Sequence[str]) -> dict[str, list[str]]:
    """The named headers of this session's request (the websocket's upgrade request), and only those: a proxy may
    forward the user's own token too (Databricks' X-Forwarded-Access-Token), which is never read, kept or shown."""
    return {name: st.context.headers.get_all(name) for name in names}  # never the whole set (tests/ui check it)


def access() -> Access:
    """This session's access, read from the running server's settings, a trusted proxy's headers and ``st.user``."""
    proxied = from_proxy(_request_headers, trust=get_secret(TRUST_PROXY_HEADERS),
                         allowed_users=get_secret(ALLOWED_USERS))
    if proxied is not None:
        return proxied
    return decide(
        address=st_config.get_option("server.address"),  # the module function, which tests can set
        auth=_auth_section(),
        user=st.user.to_dict(),
        allowed_users=get_secret(ALLOWED_USERS),
        allow_unauthenticated=get_secret(ALLOW_UNAUTHENTICATED),
        require_login=get_secret(REQUIRE_LOGIN),
        authlib=is_authlib_installed(),
    )


def current_user() -> str:
    """Who is using the dashboard: "local" on loopback, the login (or the trusted proxy's) e-mail, or
    "unauthenticated" (opt-out)."""
    found = access()
    if not found.granted:
        raise ConfigError(found.message or "Nobody is signed in.", "Open the dashboard's home page to sign in.")
    return found.user


def require_access() -> Access:
    """Called by app.py before any page: a sign-in or refusal page instead of the app, then stop."""
    found = access()
    if found.granted:
        return found
    if found.mode == "refused":
        logger.warning("refusing to serve pages: %s", found.message)

    def gate() -> None:
        _show_gate(found)

    st.navigation([st.Page(gate, title="Sign in", url_path="sign-in", default=True)], position="hidden").run()
    st.stop()


def _show_gate(found: Access) -> None:
    st.title("GEPA Studio")
    if found.mode == "sign_in":
        st.info(found.message, icon=":material/lock:")
        for provider in found.providers:
            label = "Sign in" if provider == "default" else f"Sign in with {provider}"
            if st.button(label, key=f"auth.login.{provider}", type="primary", icon=":material/login:"):
                st.login(None if provider == "default" else provider)
        return
    st.error(found.message, icon=":material/block:")
    if found.hint:
        st.markdown(found.hint)
    if found.mode == "not_allowed" and not found.proxy and st.button("Sign out", key="auth.logout",
                                                                      icon=":material/logout:"):
        st.logout()  # behind a proxy, signing out is the workspace's business


def show_status(found: Access) -> None:
    """Called by app.py on every served page: the no-login warning banner, or who is signed in."""
    if found.mode == "unauthenticated":
        st.warning(found.message, icon=":material/warning:")
    elif found.mode == "signed_in":
        with st.sidebar:
            if found.proxy:
                st.caption(f"Signed in as {found.user} (through {PROXIES[found.proxy].label})")
            else:
                st.caption(f"Signed in as {found.user}")
                if st.button("Sign out", key="auth.logout", icon=":material/logout:"):
                    st.logout()
