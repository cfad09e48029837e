"""Where the limiter's buckets live: this process (memory), this machine (SQLite) or the whole cluster (a Ray actor).

Every store answers ``reserve`` (how long to wait) and ``settle`` with the pure core of :mod:`core.lm.limits.gcra`
under its own lock: a ``threading.Lock``, one ``BEGIN IMMEDIATE`` transaction, or the actor's one thread. None of
them sleeps: the caller waits on its side.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from core.lm.limits.gcra import Bucket, reserve, settle

logger = logging.getLogger(__name__)

ACTOR_NAME = "gepa-studio-limiter"
ACTOR_NAMESPACE = "gepa-studio"
NAME_ENV = "GEPA_STUDIO_LIMITER_NAME"  # another actor name (tests)
RAY_TIMEOUT_S = 30.0  # the longest one reservation waits for the actor before the store falls back


class Store(Protocol):
    """Holds buckets; books calls on them."""

    kind: str

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float: ...

    def settle(self, key: str, reserved: int, used: int) -> None: ...

    def stats(self) -> dict[str, dict[str, Any]]: ...


class MemoryStore:
    """Buckets in this process, behind one lock."""

    kind = "memory"

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        with self._lock:
            return reserve(self._buckets.setdefault(key, Bucket()), time.monotonic(), rpm, tpm, tokens)

    def settle(self, key: str, reserved: int, used: int) -> None:
        with self._lock:
            if key in self._buckets:
                settle(self._buckets[key], reserved, used)

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: bucket.stats() for key, bucket in self._buckets.items()}


class FileStore:
    """Buckets in a SQLite file shared by this machine's processes: each booking is one ``BEGIN IMMEDIATE``
    transaction (SQLite's write lock), read-modify-write of the bucket's row. Times are wall-clock seconds."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS buckets (key TEXT PRIMARY KEY, state TEXT NOT NULL)")

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():  # a connection never crosses a fork
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")  # no fsync per booking: a lost bucket only forgets a schedule
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _update(self, key: str, change: Any) -> Any:
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT state FROM buckets WHERE key = ?", (key,)).fetchone()
            bucket = Bucket.from_dict(json.loads(row[0])) if row else Bucket()
            result = change(bucket)
            conn.execute("INSERT OR REPLACE INTO buckets (key, state) VALUES (?, ?)",
                         (key, json.dumps(bucket.to_dict())))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return result

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        return self._update(key, lambda b: reserve(b, time.time(), rpm, tpm, tokens))

    def settle(self, key: str, reserved: int, used: int) -> None:
        self._update(key, lambda b: settle(b, reserved, used))

    def stats(self) -> dict[str, dict[str, Any]]:
        rows = self._connect().execute("SELECT key, state FROM buckets").fetchall()
        return {key: Bucket.from_dict(json.loads(state)).stats() for key, state in rows}


class LimiterActor:
    """The cluster's buckets: a :class:`MemoryStore` in one named detached Ray actor. It only books; it never sleeps."""

    def __init__(self) -> None:
        self._store = MemoryStore()

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        return self._store.reserve(key, rpm, tpm, tokens)

    def settle(self, key: str, reserved: int, used: int) -> None:
        self._store.settle(key, reserved, used)

    def stats(self) -> dict[str, dict[str, Any]]:
        return self._store.stats()


def actor_name() -> str:
    return os.environ.get(NAME_ENV) or ACTOR_NAME


class RayStore:
    """Buckets in the named detached actor every process of the Ray cluster shares (created by the first caller)."""

    kind = "ray"

    def __init__(self, name: str | None = None) -> None:
        self.name = name or actor_name()
        self._actor: Any = None
        self._lock = threading.Lock()

    def actor(self) -> Any:
        with self._lock:
            if self._actor is None:
                import ray

                if not ray.is_initialized():
                    ray.init(address="auto", namespace=ACTOR_NAMESPACE, logging_level=logging.WARNING,
                             log_to_driver=False)
                remote = ray.remote(LimiterActor).options(
                    name=self.name, namespace=ACTOR_NAMESPACE, lifetime="detached", get_if_exists=True, num_cpus=0,
                    max_concurrency=1)
                self._actor = remote.remote()
            return self._actor

    def _get(self, ref: Any) -> Any:
        import ray

        return ray.get(ref, timeout=RAY_TIMEOUT_S)

    def reserve(self, key: str, rpm: int | None, tpm: int | None, tokens: int) -> float:
        return self._get(self.actor().reserve.remote(key, rpm, tpm, tokens))

    def settle(self, key: str, reserved: int, used: int) -> None:
        self.actor().settle.remote(key, reserved, used)  # fire and forget: nobody waits on a settlement

    def stats(self) -> dict[str, dict[str, Any]]:
        return self._get(self.actor().stats.remote())


def kill_actor(name: str | None = None) -> bool:
    """Remove the cluster's limiter actor (tests, or to forget every bucket); False when there was none."""
    import ray

    try:
        ray.kill(ray.get_actor(name or actor_name(), namespace=ACTOR_NAMESPACE))
    except ValueError:
        return False
    return True
