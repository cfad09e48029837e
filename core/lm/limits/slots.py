"""A local server's slots: how many calls it serves at once, a cap on threads, and a gate that times the queue.

A llama.cpp server decodes ``--parallel N`` sequences at once (its *slots*); calls beyond that wait in the server's
queue, and that wait used to be reported as the model's latency. For a model on an OpenAI-compatible server
(``ModelSpec.is_local``) :func:`server_slots` asks the server once per process and base URL (a 1 s timeout):

- llama.cpp: ``GET <root>/props`` answers ``{"total_slots": N, ...}`` (the root is the base URL without ``/v1``);
- Ollama (``GET <root>/api/version`` answers): its parallelism (``OLLAMA_NUM_PARALLEL``) is a setting of the server
  that no endpoint shows, and its default has changed between versions (4 or 1 by free memory, later 1), so it is
  left unknown: no cap;
- anything else (vLLM, LM Studio, a server that is down): unknown, no cap.

:func:`cap_threads` lowers a run's threads to the slot count (the caller logs and tags the note it returns), and
:func:`gate_lm` makes every call of an LM pass a semaphore of slot-count size per base URL and process (the ``gate``
step of :mod:`core.lm.call`, the last before the call: a call waiting for the rate limiter holds no slot), so the
wait at the gate is measured apart from the call: :func:`queue_clock` is the seconds this thread has waited so far.

Known limits: the gate is per process (two job processes on one server still queue at the server, and that wait
still reads as latency); a call answered from DSPy's cache passes the gate too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterable

from core.config.settings import get_secret
from core.lm.call import Call, Step, with_step

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.0
THREADS_CAPPED_TAG = "studio.threads_capped"


@dataclass(frozen=True)
class Slots:
    """What a server said about its slots: ``total`` (None: unknown) and which kind of server said it."""

    root: str
    total: int | None
    server: str  # "llama.cpp", "ollama" or "unknown"


def server_root(api_base: str) -> str:
    """The server's root URL: the base URL without a trailing ``/`` and ``/v1``."""
    root = api_base.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _get_json(url: str, key: str | None, timeout: float) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:  # the user's own server
        return json.loads(resp.read().decode("utf-8"))


def parse_props(data: Any) -> int | None:
    """The slot count in a llama.cpp ``/props`` answer (``total_slots``), or None."""
    total = data.get("total_slots") if isinstance(data, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) and total >= 1 else None


def probe_slots(api_base: str, key: str | None = None, timeout: float = PROBE_TIMEOUT_S) -> Slots:
    """Ask the server at ``api_base`` how many calls it serves at once (see the module's docstring)."""
    root = server_root(api_base)
    try:
        total = parse_props(_get_json(root + "/props", key, timeout))
        if total is not None:
            return Slots(root, total, "llama.cpp")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
            return Slots(root, None, "unknown")  # no answer in time: asking again would wait as long
    try:
        if isinstance(_get_json(root + "/api/version", key, timeout), dict):
            return Slots(root, None, "ollama")
    except (urllib.error.URLError, OSError, ValueError):
        pass
    return Slots(root, None, "unknown")


_FOUND: dict[str, Slots] = {}  # per root URL, this process's answers
_FOUND_LOCK = threading.Lock()


def server_slots(spec: Any) -> Slots | None:
    """The slots of ``spec``'s server (asked once per process and base URL); None for a model that is not local."""
    if not getattr(spec, "is_local", False) or not spec.api_base:
        return None
    root = server_root(spec.api_base)
    with _FOUND_LOCK:
        found = _FOUND.get(root)
    if found is None:
        key = get_secret(spec.api_key_env) if spec.api_key_env else None  # as core.lm.models.api_key_for reads it
        found = probe_slots(spec.api_base, key)
        with _FOUND_LOCK:
            found = _FOUND.setdefault(root, found)
        if found.total is not None:
            logger.info("%s serves %d call(s) at once (%s)", root, found.total, found.server)
    return found


def forget_slots() -> None:
    """Forget what servers said, and their gates (tests: a later server may get the same port)."""
    with _FOUND_LOCK:
        _FOUND.clear()
    with _GATES_LOCK:
        _GATES.clear()


def cap_threads(threads: int, specs: Iterable[Any]) -> tuple[int, str | None]:
    """``threads`` lowered to the fewest slots among ``specs``' servers, with a note saying so (None: unchanged)."""
    known = [s for s in (server_slots(spec) for spec in specs if spec is not None) if s and s.total is not None]
    if not known:
        return threads, None
    tightest = min(known, key=lambda s: s.total or 0)
    total = int(tightest.total or 1)
    if threads <= total:
        return threads, None
    note = f"{threads} -> {total} (server has {total} slot{'s' if total != 1 else ''})"
    logger.warning("threads capped %s at %s: more would only queue at the server", note, tightest.root)
    return total, note


# The gate ---------------------------------------------------------------------------------------

_GATES: dict[str, threading.BoundedSemaphore] = {}  # per root URL, this process's: shared by design
_GATES_LOCK = threading.Lock()
_WAITED = threading.local()


def _gate(root: str, total: int) -> threading.BoundedSemaphore:
    with _GATES_LOCK:
        return _GATES.setdefault(root, threading.BoundedSemaphore(total))


def queue_clock() -> float:
    """Seconds this thread's LM calls have waited at a server's gate so far (read before and after a call)."""
    return float(getattr(_WAITED, "s", 0.0))


def _waited(seconds: float) -> None:
    _WAITED.s = queue_clock() + seconds


@dataclass(frozen=True)
class GateStep(Step):
    """A call's last step before the call (:mod:`core.lm.call`): wait for a free slot of the server (its semaphore
    lives in this module), timed as the call's ``queue_s`` and this thread's :func:`queue_clock`; release it after."""

    name = "gate"
    root: str
    total: int

    def _took(self, call: Call, start: float) -> None:
        call.queue_s = time.perf_counter() - start
        call.notes[self.name] = True
        _waited(call.queue_s)

    def start(self, call: Call) -> None:
        start = time.perf_counter()
        _gate(self.root, self.total).acquire()
        self._took(call, start)

    async def astart(self, call: Call) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(_gate(self.root, self.total).acquire)
        self._took(call, start)

    def end(self, call: Call) -> None:
        if call.notes.pop(self.name, False):
            _gate(self.root, self.total).release()


def gate_lm(lm: Any, spec: Any) -> Any:
    """``lm`` (re-classed in place) whose calls pass its server's slot gate; unchanged when the slots are unknown."""
    slots = server_slots(spec)
    if slots is None or slots.total is None:
        return lm
    return with_step(lm, GateStep(slots.root, slots.total))
