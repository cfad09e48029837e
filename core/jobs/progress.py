"""What a baseline or notebook job reports as it runs (its progress.json), and the reporters that write it.

A reporter keeps the job's progress whole and hands a copy to the job's sink (``JobContext.emit``) on each change,
at most four times a second while examples flow (and at once on a failure or a part's last example).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypedDict

Emit = Callable[[dict[str, Any]], None]


class ModelProgress(TypedDict, total=False):
    done: int
    total: int
    failed: int  # examples failed so far
    failed_by_kind: dict[str, int]
    retried: int  # calls that failed (429, 5xx, timeout...) and were tried again


class BaselineProgress(TypedDict, total=False):
    """What a baseline job reports (its progress.json)."""

    phase: str  # evaluating | done
    models: dict[str, ModelProgress]
    runs: dict[str, dict[str, Any]]  # model name -> {"run_id", "error", "degraded", "stopped_by"}


class NotebookPart(TypedDict, total=False):
    """One part of a notebook job: the optimization or a baseline (its examples done so far)."""

    model: str
    state: str  # running | succeeded | failed | cancelled
    done: int
    total: int
    failed: int
    failed_by_kind: dict[str, int]
    run_id: str | None
    error: str | None


class NotebookProgress(TypedDict, total=False):
    """What a notebook job reports: the optimization's progress (the optimize kind's keys, so the jobs table and the
    state line read it as theirs), each part's, the last status lines and, at the end, each side's accuracy."""

    parts: dict[str, NotebookPart]  # "optimization", "large", "frontier"
    status: list[str]
    reproduction: str  # the id tagged on its runs (core.presets.notebook.REPRODUCTION_TAG)
    measured: list[dict[str, Any]]  # at the end: core.presets.notebook.measured_frame's rows


def count_failure(part: ModelProgress | NotebookPart, rec: Any) -> None:
    """Count one failed example record on ``part`` (in all and by its error kind)."""
    part["failed"] = part.get("failed", 0) + 1
    by_kind = part.setdefault("failed_by_kind", {})
    by_kind[rec.error_kind or "other"] = by_kind.get(rec.error_kind or "other", 0) + 1


class BaselineReporter:
    """A baseline job's progress: each model's examples done, failed (by kind) and retried, and each model's run
    (its id once it exists, its error once its provider is given up on, at the end its degraded flag)."""

    def __init__(self, emit: Emit, models: list[str], earlier: dict[str, str]) -> None:
        self._emit, self.last = emit, 0.0
        self.state: BaselineProgress = {
            "phase": "evaluating", "models": {name: {"done": 0, "total": 0} for name in models},
            "runs": {name: {"run_id": rid, "error": None} for name, rid in earlier.items()}}

    def emit(self) -> None:
        self._emit(dict(self.state))

    def on_run_created(self, spec: Any, run_id: str) -> None:
        self.state["runs"][spec.name] = {"run_id": run_id, "error": None}
        self.emit()  # a killed job's runs are known to its resume

    def on_record(self, spec: Any, done: int, total: int, rec: Any) -> None:
        model = self.state["models"][spec.name]
        model.update(done=done, total=total)
        retried = max(0, int(rec.attempts or 1) - 1)  # provider errors that a retry got past
        if retried:
            model["retried"] = model.get("retried", 0) + retried
        if rec.outcome == "failed":
            count_failure(model, rec)
        if time.time() - self.last > 0.25 or done == total or rec.outcome == "failed":
            self.last = time.time()
            self.emit()

    def on_outcome(self, outcome: Any) -> None:
        """A model's evaluation ended; one that ended in an error shows it while the next model runs."""
        if outcome.error:
            self.state["runs"][outcome.spec.name] = {"run_id": outcome.run_id or None, "error": outcome.error,
                                                     "stopped_by": outcome.stopped_by}
            self.emit()

    def ended(self, outcomes: list[Any], rows: list[dict[str, Any]]) -> None:
        """Every model's final run and failure counts (``rows``: core.evaluation.baseline.outcomes_table's)."""
        self.state["phase"] = "done"
        for o, row in zip(outcomes, rows, strict=True):
            self.state["runs"][o.spec.name] = {"run_id": o.run_id or None, "error": o.error,
                                               "degraded": bool(row["degraded"]), "stopped_by": o.stopped_by}
            if row["n"]:
                self.state["models"][o.spec.name].update(failed=row["failed"], failed_by_kind=row["failed_by_kind"])
        self.emit()


class NotebookReporter:
    """A notebook job's progress, written whole on each change (one writer at a time: the progress file is replaced
    through one temporary name per process): the optimization's own progress, then each part's."""

    def __init__(self, emit: Emit, models: Any, n_test: int) -> None:
        self._emit, self.lock, self.last = emit, threading.RLock(), 0.0
        self.optimization: dict[str, Any] = {}
        self.parts: dict[str, NotebookPart] = {
            "optimization": {"model": models.student.name, "state": "running"},
            "large": {"model": models.large.name, "state": "running", "done": 0, "total": n_test},
            "frontier": {"model": models.frontier.name, "state": "running", "done": 0, "total": n_test}}
        self.status: list[str] = []
        self.extra: dict[str, Any] = {}

    def emit(self) -> None:
        with self.lock:
            self._emit({**self.optimization, "parts": {k: dict(v) for k, v in self.parts.items()},
                        "status": self.status[-8:], **self.extra})

    def on_optimization(self, progress: dict[str, Any]) -> None:
        with self.lock:
            self.optimization = dict(progress)
            self.emit()

    def on_record(self, side: str, done: int, total: int, rec: Any) -> None:
        with self.lock:
            part = self.parts[side]
            part.update(done=done, total=total)
            if rec.outcome == "failed":
                count_failure(part, rec)
            if time.time() - self.last > 0.25 or done == total or rec.outcome == "failed":
                self.last = time.time()
                self.emit()

    def on_run(self, part: str, run_id: str) -> None:
        with self.lock:
            if part in self.parts:
                self.parts[part]["run_id"] = run_id
                self.emit()  # a killed job's runs are known to on_interrupted

    def on_status(self, text: str) -> None:
        with self.lock:
            self.status.append(text)
            self.emit()

    def ended(self, states: dict[str, tuple[str, str | None]], **extra: Any) -> None:
        """Each part's final state and error (``states``); ``extra``: what the end adds (reproduction, measured)."""
        with self.lock:
            for name, (state, error) in states.items():
                self.parts[name].update(state=state, error=error)  # type: ignore[typeddict-item]
            self.extra.update(extra)
            self.emit()
