"""Databricks credentials the Databricks way: the SDK's unified auth (``databricks.sdk.core.Config``), for a
Databricks serving endpoint whose token is not given.

Where a Databricks model's token comes from (:func:`core.lm.databricks_auth.connection` decides, for every LM):

1. its key variable (``DATABRICKS_TOKEN``, environment or secrets.toml): that token, and the SDK is not asked;
2. else the SDK, which finds a profile of ``~/.databrickscfg`` (``DATABRICKS_CONFIG_PROFILE`` picks it,
   ``DATABRICKS_CONFIG_FILE`` moves the file), OAuth machine-to-machine with a service principal (``DATABRICKS_HOST``,
   ``DATABRICKS_CLIENT_ID``, ``DATABRICKS_CLIENT_SECRET``), the app's own service principal on Databricks Apps (the
   platform sets those three), or whatever else it knows (the Azure CLI, a notebook's runtime).

The base URL is the model's own, else ``DATABRICKS_API_BASE``, else ``<host>/serving-endpoints``.

One SDK config per process and set of inputs (those variables, from the environment or secrets.toml; the
environment's other Databricks and cloud variables; the config file as it is on disk), so its discovery requests are
made once and its header factory (:func:`bearer`) hands out the token it holds until that nears expiry, then a fresh
one. A failed resolution is remembered for FAILURE_TTL_S: the Home page asks on every rerun. Each discovery request
gives up after TIMEOUT_S, because the SDK's own retry budget is five minutes: a workspace that cannot be reached would
hold a page that long (``Config()`` asks the host for ``/.well-known/databricks-config`` first; for OAuth, then the
``oidc_endpoint`` it names, for its token endpoint). The SDK's token request (``requests.post``) sets no timeout.

Imports nothing of core but the errors and the environment's reader: core.config.settings imports it
(``credential_status``, the provider's help), so lookups come in as ``get`` (``get_secret``), and the caller registers
every token it obtains with the key scrub (``core.config.secrets.register_secret``) before using it.
The SDK itself is imported only when it is asked.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config.environ import environ_snapshot
from core.config.errors import ConfigError

Lookup = Callable[[str], str | None]  # a variable's value, environment first, then secrets.toml (get_secret)

API_BASE_ENV = "DATABRICKS_API_BASE"
# The SDK's settings that may also be given in secrets.toml (the SDK itself reads only the environment).
HOST_ENV = "DATABRICKS_HOST"
CLIENT_ID_ENV = "DATABRICKS_CLIENT_ID"
CLIENT_SECRET_ENV = "DATABRICKS_CLIENT_SECRET"
PROFILE_ENV = "DATABRICKS_CONFIG_PROFILE"
CONFIG_FILE_ENV = "DATABRICKS_CONFIG_FILE"
SDK_ENV_PREFIXES = ("DATABRICKS_", "ARM_", "AZURE_", "GOOGLE_")  # what else the SDK reads from the environment
DEFAULT_CONFIG_FILE = "~/.databrickscfg"
SERVING_PATH = "/serving-endpoints"
TIMEOUT_S = 10  # seconds an SDK discovery request may take, retries included (its token request sets no limit)
FAILURE_TTL_S = 60.0
MAX_CONFIGS = 32  # sets of inputs remembered per process

HELP = ("Set DATABRICKS_TOKEN and DATABRICKS_API_BASE (https://<workspace>/serving-endpoints), or let the Databricks "
        "SDK find credentials: a profile of ~/.databrickscfg with host and token (DATABRICKS_CONFIG_PROFILE picks it), "
        "OAuth machine-to-machine with a service principal (DATABRICKS_HOST, DATABRICKS_CLIENT_ID, "
        "DATABRICKS_CLIENT_SECRET), or, on Databricks Apps, the app's own identity (set by the platform).")


def serving_base(host: str | None) -> str | None:
    """``<host>/serving-endpoints`` (``https://`` when the host names no scheme); None without a host."""
    host = (host or "").strip().rstrip("/")
    if not host:
        return None
    return (host if "://" in host else f"https://{host}") + SERVING_PATH


def _environment() -> dict[str, str]:
    """The environment's variables the SDK reads (set and not empty), read as another thread may change them."""
    return {name: value for name, value in environ_snapshot().items() if name.startswith(SDK_ENV_PREFIXES) and value}


def _given(get_secret: Lookup) -> dict[str, str]:
    """The SDK settings given by name (environment first, then secrets.toml), as Config keyword arguments."""
    given = {"host": get_secret(HOST_ENV), "client_id": get_secret(CLIENT_ID_ENV),
             "client_secret": get_secret(CLIENT_SECRET_ENV), "profile": get_secret(PROFILE_ENV),
             "config_file": get_secret(CONFIG_FILE_ENV)}
    return {attr: value for attr, value in given.items() if value}


def _config_file(given: dict[str, str]) -> Path:
    return Path(given.get("config_file") or DEFAULT_CONFIG_FILE).expanduser()


def _anything_given(get: Lookup) -> bool:
    """Is there anything the SDK could find credentials in? (No import, no request.)"""
    given = _given(get)
    return bool(given) or bool(_environment()) or _config_file(given).is_file()


def _digest(given: dict[str, str]) -> str:
    """What the SDK would read, hashed: the same digest, the same config (and no value kept in the key)."""
    path = _config_file(given)
    try:
        st = path.stat()
        state: tuple[Any, ...] = (str(path), st.st_mtime_ns, st.st_size)
    except OSError:
        state = (str(path),)
    material = repr((sorted(given.items()), sorted(_environment().items()), state))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def _make(given: dict[str, str]) -> Any:
    """A resolved SDK config, or the ConfigError that says why there is none."""
    try:
        from databricks.sdk.core import Config
    except ImportError:
        return ConfigError("The Databricks SDK (databricks-sdk) is not installed, so only a pasted DATABRICKS_TOKEN "
                           "can authenticate a Databricks model.", "Install requirements.txt, or set "
                           "DATABRICKS_TOKEN and DATABRICKS_API_BASE.")
    try:
        return Config(**given, http_timeout_seconds=TIMEOUT_S, retry_timeout_seconds=TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - ValueError mostly; whatever it is, no credentials came of it
        detail = " ".join(str(exc).split()).split(". Config: ")[0][:400]  # not the SDK's list of settings read
        return ConfigError(f"The Databricks SDK found no credentials it could use ({detail}).", HELP)


_LOCK = threading.Lock()
_CONFIGS: dict[str, tuple[float, Any]] = {}  # digest -> (when made, the Config or the ConfigError it came to)


def sdk_config(get: Lookup) -> Any:
    """The SDK's config for the inputs as they are now (one per process and set of inputs); ConfigError, naming every
    way to give credentials, when the SDK finds none."""
    given = _given(get)
    digest = _digest(given)
    with _LOCK:  # one resolution at a time: the threads of a run wait for the first one instead of repeating it
        found = _CONFIGS.get(digest)
        if found is None or (isinstance(found[1], ConfigError) and time.monotonic() - found[0] > FAILURE_TTL_S):
            if len(_CONFIGS) >= MAX_CONFIGS:
                _CONFIGS.clear()
            found = _CONFIGS[digest] = (time.monotonic(), _make(given))
    if isinstance(found[1], ConfigError):
        raise ConfigError(found[1].message, found[1].hint)
    return found[1]


def sdk_configured(get: Lookup) -> bool:
    """Does the SDK find credentials? (Never a value; no import or request when nothing is there to find.)"""
    if not _anything_given(get):
        return False
    try:
        sdk_config(get)
    except ConfigError:
        return False
    return True


def bearer(config: Any) -> str:
    """The SDK's current token: the one it holds, or a fresh one once that neared expiry (``Config.authenticate``).
    The caller registers it with the key scrub before it goes anywhere."""
    headers = config.authenticate()
    scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ConfigError(f"The Databricks SDK's {config.auth_type} credentials give no bearer token, and a serving "
                          "endpoint takes one.", HELP)
    return token.strip()


def sensitive_values(config: Any) -> list[str]:
    """The secret values an SDK config holds, by the SDK's own marking (``sensitive`` attributes: a token, a client
    secret read from a profile), to register with the key scrub."""
    values = (getattr(config, attr.name, None) for attr in type(config).attributes() if attr.sensitive)
    return [str(v) for v in values if v]
