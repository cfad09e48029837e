"""The exceptions `core` raises for systemic problems; each message says what went wrong and how to fix it.

A failure on one example (a timeout, an unparseable answer) is never an exception: it becomes a
*failed* record with its kind (see ``core.lm.breaker``); only a systemic failure (a dead provider, a
bad key) raises.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class: ``str(err)`` is the problem, ``err.hint`` the fix (may be empty)."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip() if hint else message)


class DataError(StudioError):
    """A data file or table cannot be used as a task (missing, malformed, too small...)."""


class ConfigError(StudioError):
    """A configuration is invalid (bad budget, missing model, inconsistent sizes...)."""


class ModelError(StudioError):
    """A model spec is invalid or unknown (no such preset, missing model string...)."""


class ProviderError(StudioError):
    """A provider call failed. ``kind`` is one of: auth, not_found, unreachable, timeout, rate_limit, other."""

    def __init__(self, message: str, hint: str = "", kind: str = "other") -> None:
        self.kind = kind
        super().__init__(message, hint)


class StoreError(StudioError):
    """The run store (MLflow) cannot be read or written, or a run does not exist."""


class JobError(StudioError):
    """A background job cannot be started, found, cancelled or resumed."""


class StoreUnreachable(StudioError):
    """The tracking server cannot be reached (refused, timed out, name unknown): not the same as "no such run"
    (a StoreError), so it is not a StoreError: code that reads a missing run as "gone" must not read this so."""


def unreachable(exc: BaseException) -> bool:
    """Is ``exc`` (or what it was raised from) a failure to reach the store, not an answer from it?"""
    import requests

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (ConnectionError, TimeoutError, requests.RequestException)):  # refused, timed out, 5xx
            return True
        cur = cur.__cause__ or cur.__context__
    return False
