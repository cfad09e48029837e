"""Outcomes of calls, and the circuit breaker that stops a run whose provider is gone.

Every example ends ``correct``, ``wrong`` or ``failed`` with a :data:`FailureKind`. A failure is never a
wrong answer: it is counted by kind and travels with every aggregate. A run whose provider fails
systemically (too many provider failures in a row, or too high a rate after a minimum count) is
stopped by a :class:`CircuitBreaker` with a message naming the provider's error; a finished run whose
failure rate passes ``degraded_above`` is *degraded*, never a plain success.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Literal, get_args

from core.config.errors import ConfigError, ProviderError
from core.config.settings import get_secret

Outcome = Literal["correct", "wrong", "failed"]
FailureKind = Literal["rate_limit", "server_error", "timeout", "unreachable", "auth", "not_found", "config", "parse",
                      "metric", "judge", "program", "other"]
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)
# Failures of the answer's scoring, not of the provider: "parse" (the answer named nothing the task can hold),
# "metric" (the user's metric function failed on it), "judge" (the rubric judge failed or answered unreadably),
# "program" (the code of your own DSPy program raised: core.scoring.user.program_failure).
SCORING_KINDS: tuple[FailureKind, ...] = ("parse", "metric", "judge", "program")
# Failures of the provider (the breaker counts these).
PROVIDER_KINDS: tuple[FailureKind, ...] = tuple(k for k in FAILURE_KINDS if k not in SCORING_KINDS)
# Worth another call (after a pause): the provider may answer next time.
RETRYABLE_KINDS: tuple[FailureKind, ...] = ("rate_limit", "server_error", "timeout", "unreachable")
# The same call fails every time: a run whose first calls all end so has nothing to gain from going on.
PERMANENT_KINDS: tuple[FailureKind, ...] = ("auth", "not_found", "config")
# No reply at all (refused, or none in time): a provider that answers, even 429 or 500, is alive; one that doesn't may
# be gone, so these count at every try, not only at a call's final outcome.
NO_REPLY_KINDS: tuple[FailureKind, ...] = ("unreachable", "timeout")

HINTS: dict[str, str] = {
    "auth": "Check the API key variable of this model.",
    "not_found": "Check the model name: the provider does not know it.",
    "unreachable": "Check the base URL and that the server is running.",
    "timeout": "The server did not answer in time: check that it is up, or raise the model's timeout.",
    "rate_limit": "The provider is rate-limiting: use fewer threads, or wait and resume.",
    "server_error": "The provider returns server errors: check its status, then resume.",
    "config": "Fix the model's settings on the Models page.",
}


@dataclass(frozen=True)
class BreakerSettings:
    """When a run stops, and when a finished run counts as degraded. Environment (or secrets.toml):
    ``GEPA_STUDIO_BREAKER_CONSECUTIVE``, ``GEPA_STUDIO_BREAKER_RATE``, ``GEPA_STUDIO_BREAKER_MIN_CALLS``,
    ``GEPA_STUDIO_DEGRADED_ABOVE``."""

    consecutive: int = 5  # provider failures in a row that stop the run
    max_rate: float = 0.5  # provider failure rate that stops the run...
    min_calls: int = 20  # ...once at least this many outcomes are in
    degraded_above: float = 0.05  # failure rate (any kind) above which a finished run is degraded

    def __post_init__(self) -> None:
        if self.consecutive < 1 or self.min_calls < 1:
            raise ConfigError("The circuit breaker needs at least 1 failure in a row and 1 call.",
                              f"Got consecutive={self.consecutive}, min_calls={self.min_calls}.")
        if not (0.0 < self.max_rate <= 1.0) or not (0.0 <= self.degraded_above <= 1.0):
            raise ConfigError("Failure rates must be between 0 and 1.",
                              f"Got max_rate={self.max_rate}, degraded_above={self.degraded_above}.")

    @classmethod
    def from_env(cls) -> "BreakerSettings":
        def read(name: str, cast: type, default: float) -> float:
            raw = get_secret(name)
            try:
                return cast(raw) if raw not in (None, "") else default
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number.",
                                  f"Unset it or give a number like {default}.") from None

        d = cls()
        return cls(consecutive=int(read("GEPA_STUDIO_BREAKER_CONSECUTIVE", int, d.consecutive)),
                   max_rate=read("GEPA_STUDIO_BREAKER_RATE", float, d.max_rate),
                   min_calls=int(read("GEPA_STUDIO_BREAKER_MIN_CALLS", int, d.min_calls)),
                   degraded_above=read("GEPA_STUDIO_DEGRADED_ABOVE", float, d.degraded_above))

    def degraded(self, failed: int, n: int) -> bool:
        return n > 0 and failed / n > self.degraded_above


class BreakerTripped(ProviderError):
    """The circuit breaker stopped the run (a ProviderError naming the provider's last error)."""


class CircuitBreaker:
    """Counts outcomes (thread-safe) and trips on a dead provider. ``who`` names it in the message.

    A call's *final* outcome counts (:meth:`record`): a 429 or 500 answered after its retry is a retried success,
    not a failure. A try that got no reply at all (:data:`NO_REPLY_KINDS`) also counts at once
    (:meth:`record_try`), so a dead provider stops the run at its first failed tries, not once every retry of
    every call in flight has run out: ``consecutive x tries_per_call`` such tries in a row, with no reply between,
    trip it."""

    def __init__(self, who: str, settings: BreakerSettings | None = None, *, tries_per_call: int = 1) -> None:
        self.who = who
        self.settings = settings or BreakerSettings.from_env()
        self.tries_per_call = max(1, tries_per_call)
        self.calls = self.provider_failures = self.in_a_row = self.silent_tries = 0
        self.last_kind: str | None = None
        self.last_error: str | None = None
        self.reason: str | None = None  # set once tripped
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        return self.reason is not None

    def record(self, kind: str | None, error: str | None = None) -> bool:
        """Count one call's final outcome (``kind`` None: the provider answered). True when this trips the breaker."""
        with self._lock:
            self.calls += 1
            self._count_try(kind)
            if kind is None or kind not in PROVIDER_KINDS:
                self.in_a_row = 0
                return False
            self.provider_failures += 1
            self.in_a_row += 1
            self.last_kind, self.last_error = kind, error
            if self.reason is not None:
                return False
            s = self.settings
            if self.in_a_row >= s.consecutive:
                self.reason = f"{self.in_a_row} provider failures in a row"
            elif self.calls >= s.min_calls and self.provider_failures / self.calls >= s.max_rate:
                self.reason = f"{self.provider_failures} of {self.calls} calls failed"
            else:
                self._check_silence()
            return self.reason is not None

    def record_try(self, kind: str, error: str | None = None) -> bool:
        """Count a failed try that will be retried: only a try that got no reply counts (towards a dead provider).
        True when this trips the breaker."""
        with self._lock:
            self._count_try(kind)
            if kind not in NO_REPLY_KINDS or self.reason is not None:
                return False
            self.last_kind, self.last_error = kind, error
            self._check_silence()
            return self.reason is not None

    def _count_try(self, kind: str | None) -> None:
        self.silent_tries = self.silent_tries + 1 if kind in NO_REPLY_KINDS else 0

    def _check_silence(self) -> None:
        if self.reason is None and self.silent_tries >= self.settings.consecutive * self.tries_per_call:
            self.reason = f"{self.silent_tries} tries in a row got no reply"

    def trip(self, reason: str, kind: str, error: str | None) -> None:
        """Stop now for a reason the counts alone do not show (e.g. the first calls all refused)."""
        with self._lock:
            if self.reason is None:
                self.reason, self.last_kind, self.last_error = reason, kind, error

    def error(self) -> BreakerTripped:
        """The error that stops the run: what tripped, and the provider's own last error."""
        kind = self.last_kind or "other"
        return BreakerTripped(f"{self.who}: stopped after {self.reason} (last: {kind}: "
                              f"{self.last_error or 'no message'}).",
                             HINTS.get(kind, "Check the provider, then resume."), kind)


# Last resort for an exception that is neither typed nor carries an HTTP status: its words. A status code counts
# only as a word of its own, never as part of a URL's port ("127.0.0.1:40123" is not a 401).
_CODE = r"(?<![:\d.]){}(?!\d)"
_TEXT_RULES: tuple[tuple[FailureKind, re.Pattern[str]], ...] = (
    ("unreachable", re.compile(r"connection refused|failed to connect|name or service not known")),
    ("timeout", re.compile(r"timed out|timeout")),
    ("auth", re.compile(_CODE.format(401) + r"|api key|invalid_api_key")),
    ("not_found", re.compile(r"does not exist|model_not_found")),
    ("rate_limit", re.compile(_CODE.format(429) + r"|rate limit")),
)


def classify_failure(exc: BaseException) -> FailureKind:
    """The :data:`FailureKind` of an exception raised by a call: by type, then HTTP status, then words. The one
    classifier: :func:`core.lm.models.classify_error` (connection checks), the call guard, tracing and serving
    use it."""
    return _kind_by_type(exc) or _kind_by_status(exc) or next(
        (kind for kind, pattern in _TEXT_RULES if pattern.search(str(exc).lower())), "other")


def _kind_by_type(exc: BaseException) -> FailureKind | None:
    """The kind an exception's type says (DSPy's, ours, a connection's), or None."""
    from dspy.utils import exceptions as E

    from core.config.errors import ModelError

    if isinstance(exc, ProviderError):
        return exc.kind if exc.kind in FAILURE_KINDS else "other"  # type: ignore[return-value]
    for cls, kind in ((E.AdapterParseError, "parse"), ((ModelError, ConfigError, E.LMConfigurationError), "config"),
                      (E.LMAuthError, "auth"), (E.LMRateLimitError, "rate_limit"), (E.LMTimeoutError, "timeout"),
                      (E.LMServerError, "server_error"), (E.LMUnsupportedModelError, "not_found")):
        if isinstance(exc, cls):
            return kind  # type: ignore[return-value]
    if isinstance(exc, (E.LMTransportError, ConnectionError, TimeoutError)):  # no reply at all
        text = str(exc).lower()
        timed_out = isinstance(exc, TimeoutError) or "timed out" in text or "timeout" in text
        return "timeout" if timed_out else "unreachable"
    return None


def _kind_by_status(exc: BaseException) -> FailureKind | None:
    """The kind an exception's HTTP status says, or None."""
    from dspy.utils import exceptions as E

    status = getattr(exc, "status", None)
    status = status if isinstance(status, int) else getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    if status >= 500 or (200 <= status < 300 and isinstance(exc, E.LMProviderError)):
        return "server_error"  # a 5xx, or a 200 whose body is empty or not JSON: the provider's fault
    by_status = {401: "auth", 403: "auth", 404: "not_found", 408: "timeout", 429: "rate_limit"}
    return by_status.get(status)  # type: ignore[return-value]


def retry_delay(exc: BaseException | None, attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the provider's Retry-After, else 1, 2, 4... s (max 30)."""
    hint = getattr(exc, "retry_after", None)
    if isinstance(hint, (int, float)) and 0 <= hint <= 300:
        return float(hint)
    return float(min(2 ** attempt, 30))


def degraded_reason(failed: int, n: int, by_kind: dict[str, int], settings: BreakerSettings) -> str:
    """One sentence: how many examples failed, of which kinds, against the limit."""
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1]) if v)
    return (f"{failed} of {n} examples failed ({kinds or 'no kind recorded'}), "
            f"above the {settings.degraded_above:.0%} limit.")
