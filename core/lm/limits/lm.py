"""The hook: an LM whose every call (``lm(...)`` or ``await lm.acall(...)``) first waits for the limiter.

:func:`limit_lm` attaches a :class:`LimitStep` to a ``dspy.LM`` (the ``limit`` step of :mod:`core.lm.call`, after the
call guard and before the trace and a local server's slot gate): it books the call, sleeps until it may go, and after
the call settles the tokens it reserved with the usage DSPy recorded for it. The step is part of the instance, so it
survives ``lm.copy(...)``, ``copy.copy`` and the steps other places attach.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.lm.call import Call, Step, with_step
from core.lm.limits import Ticket, limit_key, limiter

DEFAULT_OUTPUT_TOKENS = 512  # the tokens a call is assumed to answer with when its model sets no max_tokens
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class LimitStep(Step):
    """A call's second step (:mod:`core.lm.call`): book the call on its bucket (a hash, never the key) and wait its
    turn; after the call, settle the tokens it reserved with the usage DSPy recorded for it."""

    name = "limit"
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

    def settle(self, ticket: Ticket, entry: Mapping[str, Any] | None) -> None:
        if self.tpm and ticket.tokens and entry:  # without a tpm of its own the estimate stands: no round trip
            limiter().settle(ticket, used_tokens(entry))

    def start(self, call: Call) -> None:
        ticket = call.notes[self.name] = self.reserve(call.args, call.kwargs)
        if ticket.wait_s > 0:
            time.sleep(ticket.wait_s)

    async def astart(self, call: Call) -> None:
        ticket = call.notes[self.name] = await asyncio.to_thread(self.reserve, call.args, call.kwargs)
        if ticket.wait_s > 0:
            await asyncio.sleep(ticket.wait_s)

    def end(self, call: Call) -> None:
        self.settle(call.notes[self.name], call.entry)


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


def limit_lm(lm: Any, spec: Any) -> Any:
    """``lm`` (re-classed in place) with its calls limited to ``spec.rpm`` / ``spec.tpm``; ``lm`` unchanged when
    the spec sets neither. Raises ConfigError when ``GEPA_STUDIO_LIMITER`` names no store."""
    if not (spec.rpm or spec.tpm):
        return lm
    limiter()  # a bad GEPA_STUDIO_LIMITER fails here, when the LM is built, not on its first call
    return with_step(lm, LimitStep(limit_key(spec), spec.name, spec.rpm, spec.tpm,
                                   spec.max_tokens or DEFAULT_OUTPUT_TOKENS))
