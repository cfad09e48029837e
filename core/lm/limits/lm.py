"""The hook: an LM whose every call (``lm(...)`` or ``await lm.acall(...)``) first waits for the limiter.

:func:`limit_lm` re-classes a ``dspy.LM`` as a subclass (cached per class, as :mod:`core.tracking.tracing` does)
that books the call, sleeps until it may go, makes it, then settles the tokens it reserved with the usage DSPy
recorded for it.
The binding is an attribute of the instance, so it survives ``lm.copy(...)``, ``copy.copy`` and the re-classing
that tracing and the call guard do (they subclass ``type(lm)``: the limited class stays in the MRO).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from core.lm.limits import Ticket, limit_key, limiter

DEFAULT_OUTPUT_TOKENS = 512  # the tokens a call is assumed to answer with when its model sets no max_tokens
CHARS_PER_TOKEN = 4

_USAGE: ContextVar[list[Mapping[str, Any]] | None] = ContextVar("studio_limit_usage", default=None)


@dataclass(frozen=True)
class LimitBinding:
    """What a limited LM knows: its bucket (a hash, never the key), its limits and its answer size."""

    key: str
    label: str  # the model's display name, for the log
    rpm: int | None
    tpm: int | None
    output_tokens: int

    def estimate(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
        """Tokens a call will take, roughly: its prompt's characters / 4 plus the answer's allowance (booked even
        without a ``tpm`` of its own: another model on the same bucket may have one)."""
        prompt = kwargs.get("messages") or kwargs.get("prompt") or (args[0] if args else "")
        if isinstance(prompt, str):
            chars = len(prompt)
        else:
            chars = sum(len(str(m.get("content") or "")) if isinstance(m, Mapping) else len(str(m))
                        for m in (prompt or []))
        return chars // CHARS_PER_TOKEN + self.output_tokens

    def reserve(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Ticket:
        return limiter().reserve(self.key, self.rpm, self.tpm, self.estimate(args, kwargs), label=self.label)

    def settle(self, ticket: Ticket, entries: list[Mapping[str, Any]]) -> None:
        if self.tpm and ticket.tokens and entries:  # without a tpm of its own the estimate stands: no round trip
            limiter().settle(ticket, used_tokens(entries[-1]))


def used_tokens(entry: Mapping[str, Any]) -> int | None:
    """The tokens a DSPy history entry says its call used; None when it does not say."""
    usage = entry.get("usage") or {}
    if not isinstance(usage, Mapping) or not usage:
        return None
    total = usage.get("total_tokens")
    if total is None:
        parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
        if all(p is None for p in parts):
            return None
        total = sum(int(p or 0) for p in parts)
    return int(total)


class _Limited:
    """Mixed in before an LM's own class: every call waits for the limiter first."""

    _studio_limit: LimitBinding

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        binding = self._studio_limit
        ticket = binding.reserve(args, kwargs)
        if ticket.wait_s > 0:
            time.sleep(ticket.wait_s)
        slot: list[Mapping[str, Any]] = []
        token = _USAGE.set(slot)
        try:
            return super().__call__(*args, **kwargs)  # type: ignore[misc]
        finally:
            _USAGE.reset(token)
            binding.settle(ticket, slot)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        binding = self._studio_limit
        ticket = await asyncio.to_thread(binding.reserve, args, kwargs)
        if ticket.wait_s > 0:
            await asyncio.sleep(ticket.wait_s)
        slot: list[Mapping[str, Any]] = []
        token = _USAGE.set(slot)
        try:
            return await super().acall(*args, **kwargs)  # type: ignore[misc]
        finally:
            _USAGE.reset(token)
            binding.settle(ticket, slot)

    def update_history(self, entry: Mapping[str, Any]) -> None:
        slot = _USAGE.get()
        if slot is not None:
            slot.append(entry)  # DSPy records the call here, in the calling thread, before the call returns
        super().update_history(entry)  # type: ignore[misc]


@functools.lru_cache(maxsize=None)
def _limited_class(cls: type) -> type:
    return type(f"Limited{cls.__name__}", (_Limited, cls), {})


def limit_lm(lm: Any, spec: Any) -> Any:
    """``lm`` (re-classed in place) with its calls limited to ``spec.rpm`` / ``spec.tpm``; ``lm`` unchanged when
    the spec sets neither. Raises ConfigError when ``GEPA_STUDIO_LIMITER`` names no store."""
    if not (spec.rpm or spec.tpm):
        return lm
    limiter()  # a bad GEPA_STUDIO_LIMITER fails here, when the LM is built, not on its first call
    if not isinstance(lm, _Limited):
        lm.__class__ = _limited_class(type(lm))
    lm._studio_limit = LimitBinding(limit_key(spec), spec.name, spec.rpm, spec.tpm,
                                    spec.max_tokens or DEFAULT_OUTPUT_TOKENS)
    return lm
