"""Every configured secret value, and scrubbing it out of whatever leaves the process.

The values come from the environment and ``secrets.toml`` (``GEPA_STUDIO_SECRETS``): every provider key variable
(``core.config.settings.PROVIDERS``), every ``api_key_env`` of the model catalog, and every variable whose name looks
like a key, token, secret or password. :func:`scrub` replaces each with ``***``; :func:`install` makes log records
(message, arguments, exception text) and, in a process of our own, ``sys.stdout`` / ``sys.stderr`` go through it.
Values are read when scrubbing, so a key set later (a test, a reloaded secrets file) is covered too. A job's process
also names the key variables its model specs use (:func:`declare_key_names`): the Ray worker has no model catalog,
and a key held in a variable whose name does not look like one (``--key-env MY_THING``) is scrubbed all the same.
A secret the process obtains rather than reads by name (a token the Databricks SDK fetched, a client secret it read
from ``~/.databrickscfg``) is scrubbed once registered (:func:`register_secret`), before it is used.

The environment is read through :func:`environ_snapshot`: another thread (MLflow's telemetry) may set or delete a
variable while it is copied, and ``dict(os.environ)`` then fails with a KeyError or RuntimeError.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import threading
import tomllib
import traceback
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from core.config.environ import environ_snapshot as environ_snapshot  # re-exported: core.jobs.local copies it
from core.config.settings import PROVIDERS, SECRETS_PATH, load_settings

logger = logging.getLogger(__name__)

MASK = "***"
# Names of variables (environment or secrets.toml, any case) whose values are secret.
SECRET_NAME = re.compile(r"(^|[_\-.])(api_?key|key|token|secret|password|passwd|credentials?)($|[_\-.])", re.I)
# Shorter values ("1", "true", a port) would mask ordinary words everywhere; no provider key is this short.
MIN_LENGTH = 8


def _file_state(path: Path) -> tuple[str, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=16)
def _read_toml(state: tuple[str, int, int]) -> dict[str, Any]:
    try:
        with open(state[0], "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


@functools.lru_cache(maxsize=16)
def _catalog_key_names(state: tuple[str, int, int]) -> frozenset[str]:
    try:
        saved = json.loads(Path(state[0]).read_text(encoding="utf-8"))
        return frozenset(str(m["api_key_env"]) for m in saved.get("models", []) if m.get("api_key_env"))
    except (OSError, ValueError, AttributeError, TypeError):
        return frozenset()


def _secrets_file() -> dict[str, Any]:
    # A malformed file scrubs nothing from it: core.config.settings.read_secrets says so where the user looks.
    state = _file_state(Path(os.environ.get("GEPA_STUDIO_SECRETS", SECRETS_PATH)))
    return _read_toml(state) if state else {}


_DECLARED: set[str] = set()  # key variables this process was told of (a job's model specs): names, never values
_DECLARED_LOCK = threading.Lock()


def declare_key_names(names: Iterable[str | None]) -> None:
    """Scrub the values of these variables from now on in this process, whatever their names look like."""
    with _DECLARED_LOCK:
        _DECLARED.update(n for n in names if n)


_OBTAINED: set[str] = set()  # secret values this process obtained at run time (core.lm.databricks_auth): values
_OBTAINED_LOCK = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Scrub these values from now on in this process: secrets obtained rather than configured by name (an OAuth
    token, a client secret from a profile). Register a value before it goes anywhere."""
    with _OBTAINED_LOCK:
        _OBTAINED.update(v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH)


def key_env_names(data: Any) -> set[str]:
    """Every ``api_key_env`` value in JSON-like data (a job's config: its model specs, wherever they sit)."""
    if isinstance(data, dict):
        found = {str(v) for k, v in data.items() if k == "api_key_env" and isinstance(v, str) and v}
        return found.union(*(key_env_names(v) for v in data.values()))
    if isinstance(data, (list, tuple)):
        return set().union(*(key_env_names(v) for v in data))
    return set()


def _toml_secrets(table: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, value) of every string in a secrets file, nested tables (``[auth]``) included."""
    for name, value in table.items():
        if isinstance(value, dict):
            yield from _toml_secrets(value)
        elif isinstance(value, str):
            yield str(name), value


@functools.lru_cache(maxsize=16)
def _catalog_path(data_dir: str, cwd: str) -> Path:
    """The model catalog of a data dir (cached: scrubbing runs on every log line and stream write)."""
    return load_settings(data_dir or None).catalog_path


def key_names(env: dict[str, str] | None = None, table: dict[str, Any] | None = None) -> set[str]:
    """The names of the variables that hold keys: providers', the model catalog's and those declared here."""
    env = environ_snapshot() if env is None else env
    table = _secrets_file() if table is None else table
    names = {p.key_env for p in PROVIDERS.values() if p.key_env} | set(_DECLARED)
    try:
        data_dir = env.get("GEPA_STUDIO_DATA_DIR") or str(table.get("GEPA_STUDIO_DATA_DIR") or "")
        state = _file_state(_catalog_path(data_dir, os.getcwd()))
    except Exception:  # noqa: BLE001 - a broken setting must not stop scrubbing the other sources
        state = None
    if state:
        names |= _catalog_key_names(state)
    return names


def secret_values(extra: Iterable[str | None] = ()) -> frozenset[str]:
    """Every configured secret value (at least MIN_LENGTH characters), every registered one, plus ``extra``."""
    table = _secrets_file()
    env = environ_snapshot()  # one pass over the environment
    found = {v for v in extra if v}
    with _OBTAINED_LOCK:
        found.update(_OBTAINED)
    for name in key_names(env, table):
        value = env.get(name) or table.get(name)
        if isinstance(value, str):
            found.add(value)
    found.update(v for n, v in env.items() if SECRET_NAME.search(n))
    found.update(v for n, v in _toml_secrets(table) if SECRET_NAME.search(n))
    return as_secrets(found)


def as_secrets(values: Iterable[str | None]) -> frozenset[str]:
    """The values worth scrubbing (stripped, at least MIN_LENGTH characters), as :func:`scrub_with` takes them."""
    return frozenset(v.strip() for v in values if v and len(v.strip()) >= MIN_LENGTH)


@functools.lru_cache(maxsize=8)
def _pattern(values: frozenset[str]) -> re.Pattern[str] | None:
    forms: set[str] = set()
    for value in values:
        # The value as written, and as JSON or a URL would carry it.
        forms.update({value, json.dumps(value)[1:-1], urllib.parse.quote(value, safe=""),
                      urllib.parse.quote_plus(value)})
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def scrub(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every configured secret value (and each of ``extra``) replaced by ``***``."""
    if not text or not isinstance(text, str):
        return text
    return scrub_with(text, secret_values(extra))


def scrub_with(text: str, values: frozenset[str]) -> str:
    """``text`` with each of ``values`` replaced by ``***``: :func:`scrub` for many texts in a row, the secrets
    looked up once (:func:`secret_values`) for all of them (a batch of traces)."""
    if not text or not isinstance(text, str):
        return text
    pattern = _pattern(values)
    return pattern.sub(MASK, text) if pattern else text


def scrub_data(data: Any) -> Any:
    """JSON-like data (dicts, lists, strings) with every secret value scrubbed from its strings."""
    if isinstance(data, str):
        return scrub(data)
    if isinstance(data, dict):
        return {k: scrub_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [scrub_data(v) for v in data]
    return data


# Logs and streams ------------------------------------------------------------------------------


class ScrubFilter(logging.Filter):
    """Scrubs a log record in place: its message with arguments, exception text and stack; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
            clean = scrub(message)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[0] is not None:
                text = record.exc_text or "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
                record.exc_text = scrub(text)
            elif record.exc_text:
                record.exc_text = scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = scrub(record.stack_info)
        except Exception:  # noqa: BLE001 - a log call must never fail because of scrubbing
            pass
        return True


class ScrubbingStream:
    """A text stream that scrubs what is written to it, then passes it on (``sys.stderr`` of a worker or the CLI)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(scrub(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


_FILTER = ScrubFilter()


def _scrubbing_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _FILTER.filter(record)
        return record

    factory.scrubs = True  # type: ignore[attr-defined]
    return factory


def install(*, streams: bool = False) -> None:
    """Scrub every log record made in this process (whatever logger or handler writes it); with ``streams``,
    wrap ``sys.stdout`` and ``sys.stderr`` too (tracebacks, warnings, progress bars). Safe to call twice."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "scrubs", False):
        logging.setLogRecordFactory(_scrubbing_factory(current))
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if streams:
        if not isinstance(sys.stdout, ScrubbingStream):
            sys.stdout = ScrubbingStream(sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, ScrubbingStream):
            sys.stderr = ScrubbingStream(sys.stderr)  # type: ignore[assignment]


def installed() -> bool:
    """Is log scrubbing on in this process?"""
    return bool(getattr(logging.getLogRecordFactory(), "scrubs", False))
