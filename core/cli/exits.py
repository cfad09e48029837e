"""THE exit-code rule of every ``python -m core`` command: one table, read by every command and by the README.

A command ends in one of five outcomes: ``ok`` (0), ``failed`` (1: a model, provider or run failed),
``usage`` (2: bad input, with a message saying what to change), ``degraded`` (3: it finished, but too many calls
or examples failed for its numbers to be trusted as they are, or the optimizer gave nothing to test) and
``interrupted`` (130: Ctrl-C; the run is kept and resumable where its kind is). A cancelled job (Cancel, the
spending cap) is ``ok``: it stopped where it was asked to and kept its best program.
"""

from __future__ import annotations

from typing import Literal

from core.jobs.kinds import DEGRADED_PREFIX  # a job that succeeded degraded says so at the start of its note

Outcome = Literal["ok", "failed", "usage", "degraded", "interrupted"]

EXIT_CODES: dict[Outcome, int] = {"ok": 0, "failed": 1, "usage": 2, "degraded": 3, "interrupted": 130}
# Which outcome wins when a command ran several things (a baseline of several models, seeds one after another).
_SEVERITY: tuple[Outcome, ...] = ("ok", "degraded", "failed", "usage", "interrupted")

EXIT_HELP = ("Exit status: 0 ok (a cancelled or capped job included); 1 failed; 2 bad input; 3 degraded (finished, "
             "but too many failures to trust its numbers, or nothing was optimized); 130 interrupted (Ctrl-C: the "
             "run is kept; the line printed says how to resume it).")


def exit_code(outcome: Outcome) -> int:
    """The process exit code of ``outcome``."""
    return EXIT_CODES[outcome]


def worst(outcomes: list[Outcome]) -> Outcome:
    """The outcome of a command that ran several things: the most severe of theirs (``ok`` for none)."""
    return max(outcomes, key=_SEVERITY.index, default="ok")


def job_outcome(state: str, note: str | None = None) -> Outcome:
    """A job's outcome from its state and note: succeeded (degraded when its note says so), cancelled and still
    queued or running are ok; interrupted is interrupted; failed is failed."""
    if state == "failed":
        return "failed"
    if state == "interrupted":
        return "interrupted"
    if state == "succeeded" and (note or "").startswith(DEGRADED_PREFIX):
        return "degraded"
    return "ok"


def baseline_outcome(error: bool, degraded: bool) -> Outcome:
    """One evaluation run's outcome: a model that failed (or its provider given up on), or a degraded run."""
    return "failed" if error else "degraded" if degraded else "ok"
