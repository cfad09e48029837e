"""One rate limit per provider key, shared by every call on this machine or across a Ray cluster.

A model with ``rpm`` (requests per minute) or ``tpm`` (tokens per minute) set is built by
:func:`core.lm.models.build_lm` as an LM whose every call first asks the limiter when it may go, then waits on its
own side (:mod:`core.lm.limits.lm`). Calls are booked on a *bucket*: :func:`limit_key` hashes the model string, the base
URL (or provider) and the key's value, so two models with the same key and model string share one bucket and one
limit (the strictest either names). The key's value is only ever hashed: never stored, logged or sent.

The buckets live in a store (:mod:`core.lm.limits.stores`) that :func:`limiter` picks from ``GEPA_STUDIO_LIMITER``:

- ``ray``: a named detached Ray actor that the whole cluster shares (the Ray backend sets this for its jobs). If it
  cannot be reached, the limiter falls back to ``file`` or ``memory``: a job never fails for it, but the limit then
  holds per node only, so N nodes may together send up to N times the limit. That is never silent: the limiter
  records the fallback (:attr:`Limiter.fallback`, :func:`fallback_notice`), and the Ray worker
  (:mod:`core.jobs.remote`) puts it in the job's progress (``warnings`` and ``limiter_fallback``: the job card and
  ``jobs show`` print it) and tags the job's MLflow run ``studio.limiter_fallback``. We chose this over refusing to
  run: a provider's own rate limit (429, retried) still bounds a run, while a refused job would lose its work.
- ``file``: SQLite in ``<GEPA_STUDIO_DATA_DIR>/limits.db``, shared by this machine's processes (the default when
  ``GEPA_STUDIO_DATA_DIR`` is set, as it is for local job workers);
- ``memory``: this process only (the default otherwise).

How long calls waited is counted per bucket (:meth:`Limiter.stats`) and logged at INFO at most once a minute per
bucket and process.

Known limits: a call answered from DSPy's cache passes through the limiter too (it waits its turn and counts as a
request, though the provider never sees it); the retries DSPy/LiteLLM make inside one call (``num_retries``) are not
booked again; the token estimate (prompt characters / 4 plus the model's ``max_tokens``, else 512) is settled with
the real usage only after the call, so a large ``max_tokens`` spaces the first calls widely; a model with no
``rpm``/``tpm`` is not limited (nor counted) even when another model with the same key is. A call's trace starts
after its wait here (:mod:`core.lm.call`: the limit step runs before the trace step), so the wait is in no trace.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

from core.config.errors import ConfigError
from core.config.settings import get_secret
from core.lm.limits.gcra import TOKEN_BURST_S, Bucket, achieved_rate, reserve, settle
from core.lm.limits.stores import FileStore, MemoryStore, RayStore, Store, actor_name

logger = logging.getLogger(__name__)

__all__ = ["TOKEN_BURST_S", "Bucket", "Limiter", "Ticket", "achieved_rate", "limit_key", "limiter", "reserve",
           "settle", "store_kind", "fallback_notice"]

LIMITER_ENV = "GEPA_STUDIO_LIMITER"
DATA_DIR_ENV = "GEPA_STUDIO_DATA_DIR"
KINDS = ("ray", "file", "memory")
LOG_EVERY_S = 60.0
DB_NAME = "limits.db"


def limit_key(spec: Any) -> str:
    """The bucket of a model spec: 16 hex characters of sha256 over its model string, its base URL (else its
    provider) and its key's value (read as :func:`core.lm.models.api_key_for` reads it); never the key itself."""
    key = (get_secret(spec.api_key_env) if spec.api_key_env else None) or ""
    material = "\x1f".join((spec.model, spec.api_base or spec.provider, key))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


class Ticket(NamedTuple):
    """One booked call: its bucket, the tokens it reserved and how long it must wait (or waited)."""

    key: str
    tokens: int
    wait_s: float


class Limiter:
    """Books calls on a store; falls back to another store once, with a warning, if the first one fails."""

    def __init__(self, store: Store, fallback: Callable[[], Store] | None = None) -> None:
        self.store = store
        self._fallback = fallback
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = {}  # bucket -> [last log time, calls, waits, seconds waited]
        self.fallback: dict[str, str] | None = None  # {"from", "to", "reason"} once the first store failed

    @property
    def kind(self) -> str:
        """Which store books the calls now: ``ray``, ``file`` or ``memory``."""
        return self.store.kind

    def _do(self, op: str, *args: Any) -> Any:
        store = self.store
        try:
            return getattr(store, op)(*args)
        except Exception as exc:  # a limiter that cannot be reached never fails the call
            if self._fallback is None:
                raise
            with self._lock:
                if self.store is store:
                    self.store = self._fallback()
                    self._fallback = None
                    self.fallback = {"from": store.kind, "to": self.store.kind, "reason": str(exc)[:300]}
                    logger.warning("The %s rate limiter cannot be reached (%s): limiting with the %s store instead, "
                                   "shared by fewer processes.", store.kind, str(exc)[:300], self.store.kind)
            return getattr(self.store, op)(*args)

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int = 0, *, label: str = "") -> Ticket:
        """Book one call on bucket ``key``; the ticket says how long to wait before making it (no sleep here)."""
        tokens = max(0, int(tokens))
        wait = float(self._do("reserve", key, rpm, tpm, tokens))
        self._note(key, max(0.0, wait), label)
        return Ticket(key, tokens, max(0.0, wait))

    def acquire(self, key: str, rpm: int | None, tpm: int | None, tokens: int = 0, *, label: str = "") -> Ticket:
        """Book one call and sleep until it may go."""
        ticket = self.reserve(key, rpm, tpm, tokens, label=label)
        if ticket.wait_s > 0:
            time.sleep(ticket.wait_s)
        return ticket

    def settle(self, ticket: Ticket, used: int | None) -> None:
        """Book the tokens a call really used against those its ticket reserved (None: keep the reservation)."""
        if used is None or not ticket.tokens:
            return
        try:
            self._do("settle", ticket.key, ticket.tokens, int(used))
        except Exception as exc:  # noqa: BLE001 - a lost settlement only leaves the reservation standing
            logger.debug("could not settle a reservation: %s", exc)

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per bucket: calls, how many waited, seconds waited, and the limits in force (shared across the store)."""
        return self._do("stats")

    def _note(self, key: str, wait: float, label: str) -> None:
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(key, [float("-inf"), 0, 0, 0.0])
            seen[1] += 1
            if wait > 0:
                seen[2] += 1
                seen[3] += wait
            if not seen[2] or now - seen[0] < LOG_EVERY_S:
                return
            last, calls, waits, waited = seen
            self._seen[key] = [now, 0, 0, 0.0]
        since = "" if last == float("-inf") else f" in the last {now - last:.0f} s"
        logger.info("rate limit %s%s: %d of %d calls waited%s, %.1f s in all (%s store)", key,
                    f" ({label})" if label else "", waits, calls, since, waited, self.kind)


def store_kind() -> str:
    """The store ``GEPA_STUDIO_LIMITER`` names (``ray``, ``file``, ``memory``), else ``file`` when
    ``GEPA_STUDIO_DATA_DIR`` is set, else ``memory``. Raises ConfigError for another value."""
    raw = (os.environ.get(LIMITER_ENV) or "").strip().lower()
    if raw and raw not in KINDS:
        raise ConfigError(f"{LIMITER_ENV}={raw!r} is not one of {', '.join(KINDS)}.",
                          f"Unset it, or set {LIMITER_ENV}=ray (a Ray cluster), file (this machine) or memory "
                          "(this process).")
    return raw or ("file" if os.environ.get(DATA_DIR_ENV) else "memory")


def _local_store(data_dir: str | None) -> Store:
    return FileStore(Path(data_dir) / DB_NAME) if data_dir else MemoryStore()


_LIMITERS: dict[tuple[str, str | None, str | None], Limiter] = {}  # this process's, one per setting: shared by design
_LIMITERS_LOCK = threading.Lock()


def _new_limiter(kind: str, data_dir: str | None, name: str | None) -> Limiter:
    if kind == "ray":
        return Limiter(RayStore(name), lambda: _local_store(data_dir))
    if kind == "file" and data_dir:
        return Limiter(FileStore(Path(data_dir) / DB_NAME), MemoryStore)
    return Limiter(MemoryStore())


def limiter() -> Limiter:
    """This process's limiter for the store the environment names (see the module's docstring); one per setting."""
    kind = store_kind()
    setting = (kind, os.environ.get(DATA_DIR_ENV) or None, actor_name() if kind == "ray" else None)
    found = _LIMITERS.get(setting)
    if found is None:
        with _LIMITERS_LOCK:  # two threads asking first must get one limiter, or each would book its own buckets
            found = _LIMITERS.get(setting) or _LIMITERS.setdefault(setting, _new_limiter(*setting))
    return found


def fallback_notice() -> str | None:
    """What a user must know when one of this process's limiters fell back to a narrower store (else None)."""
    for lim in list(_LIMITERS.values()):
        if lim.fallback:
            f = lim.fallback
            return (f"The {f['from']} rate limiter could not be reached ({f['reason']}): calls were limited by the "
                    f"{f['to']} store, per node, so the cluster-wide rpm/tpm may have been exceeded.")
    return None


def forget_limiters() -> None:
    """Drop this process's limiters (tests): the next :func:`limiter` starts from empty memory buckets."""
    with _LIMITERS_LOCK:
        _LIMITERS.clear()
