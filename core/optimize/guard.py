"""Watch every call GEPA makes to the student and the reflection model: count failures by kind, trip a circuit
breaker when a provider is gone, and fail fast once it has tripped.

GEPA checks its stop callbacks only between iterations, and it turns a failed student call into a failure
score and a failed reflection call into "no proposal", so neither ever reaches our code as an error. The
guard sits on the LM itself (``lm(...)`` is the one path DSPy's adapters take), so it sees each call's
outcome after the LM's own retries, and once tripped it answers the rest of the iteration at once. It is the first
step of a call (:mod:`core.lm.call`): a tripped guard books no rate limit, takes no server slot and leaves no trace.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from typing import Any, Literal

from core.config.errors import ProviderError
from core.lm.breaker import BreakerSettings, CircuitBreaker, FailureKind, classify_failure
from core.lm.call import Call, Step, with_step
from core.lm.models import ModelSpec, redact

Role = Literal["student", "reflection"]


def failure_kind(exc: BaseException) -> FailureKind:
    """The kind of a failed LM call (``parse`` when the model answered but its answer could not be read): the one
    classifier's, :func:`core.lm.breaker.classify_failure`."""
    return classify_failure(exc)


class CallGuard:
    """Counts one model's calls and failures (thread-safe) and holds its circuit breaker."""

    def __init__(self, role: Role, spec: ModelSpec, settings: BreakerSettings | None = None,
                 base_calls: int = 0, base_failed: int = 0) -> None:
        self.role, self.spec = role, spec
        self.breaker = CircuitBreaker(f"{role} model {spec.name}", settings)
        self.calls, self.failed = base_calls, base_failed  # earlier attempts of a resumed job included
        self.by_kind: Counter[str] = Counter()
        self.tripped_at: float | None = None
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        return self.breaker.tripped

    def error(self) -> ProviderError:
        return self.breaker.error()

    def check(self) -> None:
        """Fail fast once the breaker has tripped: the provider is gone, don't wait for it again."""
        if self.breaker.tripped:
            raise self.breaker.error()

    def record(self, exc: BaseException | None) -> None:
        kind = None if exc is None else failure_kind(exc)
        with self._lock:
            self.calls += 1
            if kind is not None:
                self.failed += 1
                self.by_kind[kind] += 1
        message = None if exc is None else redact(str(exc), self.spec)[:500]
        if self.breaker.record(kind, message):
            self.tripped_at = time.time()


class GuardStep(Step):
    """The call's first step (:mod:`core.lm.call`): fail fast once tripped; count the outcome after the call."""

    name = "guard"

    def __init__(self, guard: CallGuard) -> None:
        self.guard = guard

    def start(self, call: Call) -> None:
        self.guard.check()

    def end(self, call: Call) -> None:
        if call.ended:  # an interrupted or cancelled call has no outcome to count
            self.guard.record(call.error)


def guard_lm(lm: Any, guard: CallGuard) -> Any:
    """A shallow copy of ``lm`` (same engine, history and cache) whose calls go through ``guard``."""
    return with_step(copy.copy(lm), GuardStep(guard))


class ProposalCounter:
    """Reflection proposals GEPA started, and how many gave no usable instruction (the call raised, its answer
    could not be parsed, or it was empty). A proposal that has not ended by its iteration's end has failed."""

    def __init__(self, base_started: int = 0, base_failed: int = 0) -> None:
        self.started, self.failed = base_started, base_failed
        self.in_a_row = 0
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def succeeded(self) -> int:
        return self.started - self.failed - self._pending

    def start(self) -> None:
        with self._lock:
            self.started += 1
            self._pending += 1

    def end(self, instructions: dict[str, Any] | None) -> None:
        usable = bool(instructions) and all(str(v or "").strip() for v in (instructions or {}).values())
        with self._lock:
            self._pending = max(0, self._pending - 1)
            if usable:
                self.in_a_row = 0
            else:
                self.failed += 1
                self.in_a_row += 1

    def close_iteration(self) -> None:
        with self._lock:
            self.failed += self._pending
            self.in_a_row += self._pending
            self._pending = 0
