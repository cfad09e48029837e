"""How an optimization run ends when it is not by its own end: Ctrl-C (every optimizer alike), and a GEPA search that
never produced a proposal.

Ctrl-C: :func:`ends_interrupted` wraps an optimizer's run: its MLflow run (and any test evaluation it was in) ends
KILLED, tagged ``studio.state=interrupted`` and ``studio.stop_reason`` — what the studio reads as INTERRUPTED —
and the KeyboardInterrupt goes on to the caller (the job becomes ``interrupted``; the CLI exits 130 and says how to
resume). A resume goes on in the same run: GEPA from its last saved iteration, the others from the start.

No proposal: GEPA reflects only on trajectories (the student's traced answers). When none can be built (every
answer unparseable; DSPy 3.4.1's ``bootstrap_trace`` also drops partly parsed ones), GEPA spends its whole budget
without calling the reflection model once and returns the starting program as "optimized". :class:`SearchWatch`
sees that and says so.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections import Counter
from typing import Any, Callable, TypeVar

from dspy.utils.callback import BaseCallback

from core.config.errors import StudioError
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted (Ctrl-C)"  # the stop reason of a run ended by Ctrl-C
F = TypeVar("F", bound=Callable[..., Any])


def mark_interrupted(store: RunStore, run_id: str) -> None:
    """End ``run_id`` and its RUNNING test evaluations KILLED, tagged interrupted (resumable). Never raises: the
    interrupt itself is what the caller must see."""
    try:
        close_orphan_evaluations(store, run_id)
        if store.get_run(run_id).info.status == "RUNNING":  # not ended yet by the optimizer's own handler
            store.set_tags(run_id, {f"{TAG}state": "interrupted", f"{TAG}stop_reason": INTERRUPTED})
            store.end_run(run_id, "KILLED")
    except Exception:  # a store that fails here must not hide the interrupt
        logger.exception("could not mark run %s interrupted", run_id)


def ends_interrupted(run: F) -> F:
    """Wrap an optimizer's ``run(ctx, ...)`` (ctx: a ``core.optimize.session.RunContext``): on Ctrl-C, the run it
    opened ends interrupted (:func:`mark_interrupted`) before the KeyboardInterrupt goes on."""

    @functools.wraps(run)
    def wrapper(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        opened: list[str] = []
        then = ctx.on_run_created

        def note(run_id: str) -> None:
            opened.append(run_id)
            if then:
                then(run_id)

        try:
            return run(dataclasses.replace(ctx, on_run_created=note), *args, **kwargs)
        except KeyboardInterrupt:
            if opened:
                mark_interrupted(ctx.store, opened[-1])
            raise

    return wrapper  # type: ignore[return-value]


def close_orphan_evaluations(store: RunStore, run_id: str) -> list[str]:
    """End the RUNNING child evaluations of an optimization (a kill during its test evaluation leaves them
    RUNNING) as KILLED, tagged ``studio.state=interrupted``; returns their ids."""
    closed = []
    for run in store.search(f"tags.`mlflow.parentRunId` = '{run_id}'"):
        if run.info.status == "RUNNING":
            store.set_tags(run.info.run_id, {f"{TAG}state": "interrupted"})
            store.end_run(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    if closed:
        logger.info("closed %d orphan evaluation run(s) of %s: %s", len(closed), run_id, ", ".join(closed))
    return closed


class NoProposal(StudioError):
    """GEPA ended without one proposal to test: the reflection model was never called."""

    stopped_by = "no_proposal"  # the run's studio.stopped_by tag: nothing to finish, its program is the starting one


class ParseCounter(BaseCallback):
    """A DSPy callback counting adapter parses that succeeded and failed (the student's answers, during a search
    whose reflection model is never called: DSPy's adapters parse only through here)."""

    def __init__(self) -> None:
        self.parsed, self.failed = 0, 0
        self._lock = threading.Lock()

    def on_adapter_parse_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        with self._lock:
            if exception is None:
                self.parsed += 1
            else:
                self.failed += 1


class SearchWatch:
    """A GEPA callback: this attempt's iterations and why GEPA skipped reflecting (``no_trajectories``,
    ``all_scores_perfect``), to tell a search that found nothing to improve from one that could not look; with
    ``parses`` (a DSPy callback) the student's answers that could not be parsed."""

    def __init__(self) -> None:
        self.iterations = 0
        self.skipped: Counter[str] = Counter()
        self.parses = ParseCounter()

    def on_iteration_start(self, event: Any) -> None:
        self.iterations += 1

    def on_evaluation_skipped(self, event: Any) -> None:
        self.skipped[str(event.get("reason") or "other")] += 1

    def no_proposal(self, proposals: int, reflection_calls: int) -> NoProposal | None:
        """Why this search proposed nothing, when it should have; None when it proposed something (``proposals``
        and ``reflection_calls``: every attempt's), had nothing to improve (every minibatch scored perfect), or
        never got to an iteration."""
        if proposals or reflection_calls or not self.iterations:
            return None
        if self.skipped and set(self.skipped) == {"all_scores_perfect"}:
            return None
        if self.parses.failed and not self.parses.parsed:
            why = "no trajectories: the student's answers could not be parsed"
        elif self.parses.failed:
            why = (f"no trajectories: {self.parses.failed} of the student's answers could not be parsed, "
                   "and DSPy builds none from a partly parsed one")
        else:
            why = "no trajectories: the student's program failed on every example"
        return NoProposal(f"GEPA made no proposal: the reflection model was never called ({why}) in "
                          f"{self.iterations} iteration(s).",
                          "The optimized program is the starting one. Try a student that answers in the expected "
                          "format (a larger model, or the cot module); its answers are in the run's traces.")
