"""One path for an LM call: the steps a call goes through, in one visible order.

Four concerns wrap every call of a ``dspy.LM``; each is a :class:`Step` that the place which configures it attaches
with :func:`with_step` (the LM is re-classed once, here, and keeps DSPy's API: ``lm(...)``, ``await lm.acall(...)``,
``lm.copy(...)``, ``lm.history``, the cache). Whatever order they are attached in, a call runs them in :data:`ORDER`:

1. ``guard`` (:class:`core.optimize.guard.GuardStep`, attached by an optimization): fail fast once the model's circuit
   breaker has tripped; after the call, count its outcome (and trip the breaker).
2. ``limit`` (:class:`core.lm.limits.lm.LimitStep`, attached by :func:`core.lm.models.build_lm` when the spec sets
   rpm/tpm): book the call on its rate-limit bucket and wait its turn; after the call, settle the tokens it used.
3. ``trace`` (:class:`core.tracking.tracing.TraceStep`, attached by a traced run): start the span's clock; after the
   call, hand the call to the trace writer.
4. ``gate`` (:class:`core.lm.limits.slots.GateStep`, attached by ``build_lm`` for a local server with known slots):
   wait for a free slot, timed as :attr:`Call.queue_s`; release it right after the call.

Then DSPy's own call, whose callbacks run first inside it (a Databricks LM's token refresh,
:mod:`core.lm.databricks_auth`, is one: it changes what the call sends, never whether it is made). Steps end in the
reverse order (gate, trace, limit, guard), also when a step or the call raised; a step whose start raised is not ended.
So: a tripped guard books, traces and queues nothing; a call waiting for the limiter holds no server slot and its wait
is not in its trace; a trace's span includes the wait for a slot, reported apart (``queue_s``) and left out of its
latency; the slot is free before the trace is written.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

ORDER: tuple[str, ...] = ("guard", "limit", "trace", "gate")  # the one place the order is defined
# The predictor of your own program that is calling ("" for the studio's one-predictor programs): set around each of
# its calls by core.program.user_program.PredictorNames, read by the trace step (a trace's studio.predictor tag).
CURRENT_PREDICTOR: ContextVar[str] = ContextVar("gepa_studio_predictor", default="")


@dataclass
class Call:
    """One call going through the steps: what was asked, what DSPy recorded, how it ended. Once the call has ended
    nothing changes it but the steps' own ``notes``, so a step may hand it to another thread (the trace writer)."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    entries: list[Mapping[str, Any]] = field(default_factory=list)  # DSPy's history entries recorded by this call
    out: Any = None
    error: Exception | None = None
    ended: bool = False  # the call returned or raised an Exception (not interrupted or cancelled)
    queue_s: float = 0.0  # seconds it waited for a free server slot (the gate)
    notes: dict[str, Any] = field(default_factory=dict)  # what a step keeps between its start and its end

    @property
    def entry(self) -> Mapping[str, Any] | None:
        """DSPy's history entry for this call (None when it recorded none: it failed, or history is off)."""
        return self.entries[-1] if self.entries else None


class Step:
    """One concern of a call. ``name`` is its place in :data:`ORDER`; ``start`` may wait or raise (the call is not
    made); ``end`` runs after the call however it ended and must not raise (it is logged if it does)."""

    name: str = ""

    def start(self, call: Call) -> None:
        """Before the call (in :data:`ORDER`)."""

    async def astart(self, call: Call) -> None:
        """Before an async call: :meth:`start` unless the step waits (then it must not block the event loop)."""
        self.start(call)

    def end(self, call: Call) -> None:
        """After the call (in reverse :data:`ORDER`)."""


_CALL: ContextVar[Call | None] = ContextVar("studio_lm_call", default=None)


@contextmanager
def _current(call: Call) -> Iterator[None]:
    token = _CALL.set(call)
    try:
        yield
    finally:
        _CALL.reset(token)


def _end(started: list[Step], call: Call) -> None:
    for step in reversed(started):
        try:
            step.end(call)
        except Exception:
            logger.exception("the %s step failed after a call", step.name)


class _Stepped:
    """Mixed in before an LM's own class (by :func:`with_step`): every call goes through the LM's steps."""

    _studio_steps: tuple[Step, ...] = ()
    _studio_base: type

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call, started = Call(args, dict(kwargs)), []
        try:
            for step in self._studio_steps:
                step.start(call)
                started.append(step)
            with _current(call):
                call.out = super().__call__(*args, **kwargs)  # type: ignore[misc]
            call.ended = True
            return call.out
        except Exception as exc:
            call.error, call.ended = exc, True
            raise
        finally:
            _end(started, call)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        call, started = Call(args, dict(kwargs)), []
        try:
            for step in self._studio_steps:
                await step.astart(call)
                started.append(step)
            with _current(call):
                call.out = await super().acall(*args, **kwargs)  # type: ignore[misc]
            call.ended = True
            return call.out
        except Exception as exc:
            call.error, call.ended = exc, True
            raise
        finally:
            _end(started, call)

    def update_history(self, entry: Mapping[str, Any]) -> None:
        call = _CALL.get()
        if call is not None:
            call.entries.append(entry)  # DSPy records the call here, in the calling thread, before the call returns
        super().update_history(entry)  # type: ignore[misc]

    def dump_state(self) -> dict[str, Any]:
        state = super().dump_state()  # type: ignore[misc]
        if "_dspy_lm_class" in state:  # the LM's own class: a saved program reloads as a plain LM
            state["_dspy_lm_class"] = f"{self._studio_base.__module__}.{self._studio_base.__qualname__}"
        return state


@functools.lru_cache(maxsize=None)
def _stepped_class(cls: type) -> type:
    return type(f"Studio{cls.__name__}", (_Stepped, cls), {"_studio_base": cls})


def with_step(lm: Any, step: Step) -> Any:
    """``lm`` (re-classed in place, once) with ``step`` among its steps, replacing a step of the same name; the steps
    run in :data:`ORDER` whatever order they were attached in. Copies made before keep their own steps."""
    if step.name not in ORDER:
        raise ValueError(f"An LM call step is one of {', '.join(ORDER)}, not {step.name!r}.")
    if not isinstance(lm, _Stepped):
        lm.__class__ = _stepped_class(type(lm))
    kept = [s for s in lm._studio_steps if s.name != step.name]
    lm._studio_steps = tuple(sorted([*kept, step], key=lambda s: ORDER.index(s.name)))
    return lm


def steps_of(lm: Any) -> dict[str, Step]:
    """The steps an LM's calls go through, by name, in :data:`ORDER` (empty for a plain LM)."""
    return {s.name: s for s in getattr(lm, "_studio_steps", ())}
