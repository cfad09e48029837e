"""Live progress of an optimization: typed events, a cost meter per LM, and the GEPA callback that feeds a sink."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, TypedDict

from core.lm.models import Price
from core.optimize.guard import CallGuard, ProposalCounter
from core.tracking.store import RunStore

logger = logging.getLogger(__name__)


class ProgressPoint(TypedDict):
    t: float
    metric_calls: int
    iteration: int
    best_score: float | None
    val_score: float | None


class OptimizeProgress(TypedDict, total=False):
    """What an optimization job reports (its progress.json)."""

    phase: str  # loading | optimizing | evaluating | done | stopped | failed
    message: str
    error: str  # when failed: what stopped it (the circuit breaker's message names the provider's error)
    metric_calls_used: int
    metric_calls_budget: int
    iteration: int
    candidates: int
    best_val_score: float | None
    elapsed_s: float
    # Spend: what the providers billed (a cache hit costs nothing), over all attempts.
    student_cost_usd: float
    reflection_cost_usd: float
    total_cost_usd: float
    cached_calls: int  # LM calls answered from DSPy's cache (nothing spent), over all attempts
    attempts: int
    resumed_from_metric_calls: int
    # Faults, over all attempts: calls that reached a provider and failed, and reflection proposals that
    # gave no usable instruction.
    student_calls: int
    failed_student_calls: int
    reflection_calls: int
    failed_reflection_calls: int
    proposals: int
    failed_proposals: int
    degraded: bool
    degraded_reason: str
    stopped_by: str  # "breaker" when the circuit breaker stopped it
    history: list[ProgressPoint]
    updated_at: float


class CostMeter:
    """Running spend of one LM, read from its history: what the provider billed (a cache hit, whose history entry
    carries no usage, costs nothing and is counted in ``cached_calls``)."""

    def __init__(self, lm: Any, price: Price, base_usd: float = 0.0) -> None:
        self.lm, self.price, self.total = lm, price, base_usd
        self.input_tokens = self.output_tokens = 0
        self.calls = self.cached_calls = 0  # this attempt's calls seen in the history, and those from the cache
        self._seen: str | None = None
        self._lock = threading.Lock()

    def update(self) -> float:
        with self._lock:
            history = list(self.lm.history)
            new = []
            for entry in reversed(history):
                if entry.get("uuid") == self._seen:
                    break
                new.append(entry)
            if history:
                self._seen = history[-1].get("uuid")
            for entry in new:
                usage = entry.get("usage") or {}
                self.calls += 1
                self.cached_calls += not usage
                inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                self.input_tokens += inp
                self.output_tokens += out
                self.total += self.price.cost(inp, out) or 0.0
            return self.total


ProgressSink = Callable[[OptimizeProgress], None]


SPEND_LOG_S = 5.0  # how often the spend so far is logged to the MLflow run while it goes
HEARTBEAT_S = 1.0  # how often the progress is written while nothing else reports (the first calls)
FIRST_CALLS = "first calls: scoring the starting program"


class ProgressCallback:
    """GEPA callback that keeps a OptimizeProgress and hands it to a sink (throttled); never raises.

    ``meters`` are the student's and the reflection model's. With ``run`` (a store and run id) it also logs the spend
    so far to the run every SPEND_LOG_S seconds, so a run that fails, is killed or is cancelled still shows what it
    spent (:meth:`log_spend` logs it once more at its end)."""

    min_interval_s = 0.25  # the sink hears at most this often (a forced emit: at once)

    def __init__(self, sink: ProgressSink, budget: int, meters: tuple[CostMeter, CostMeter],
                 previous: OptimizeProgress | None = None, *, run: tuple[RunStore, str] | None = None,
                 guards: tuple[CallGuard, CallGuard] | None = None, proposals: ProposalCounter | None = None) -> None:
        prev = previous or {}
        student, reflection = meters
        self.sink, self.student, self.reflection = sink, student, reflection
        self.guards, self.proposals = guards, proposals
        self.store, self.run_id = run or (None, None)
        self.started = time.time()
        self.prev_elapsed = float(prev.get("elapsed_s", 0.0))
        self._last_emit = self._last_logged = 0.0
        self.prev_cached = int(prev.get("cached_calls", 0))
        self._lock = threading.Lock()
        self.state: OptimizeProgress = {
            "phase": "optimizing", "message": "", "metric_calls_used": int(prev.get("metric_calls_used", 0)),
            "metric_calls_budget": budget, "iteration": int(prev.get("iteration", 0)),
            "candidates": int(prev.get("candidates", 0)), "best_val_score": prev.get("best_val_score"),
            "elapsed_s": self.prev_elapsed, "student_cost_usd": student.total, "reflection_cost_usd": reflection.total,
            "total_cost_usd": student.total + reflection.total, "cached_calls": int(prev.get("cached_calls", 0)),
            "attempts": int(prev.get("attempts", 0)) + 1,
            "resumed_from_metric_calls": int(prev.get("metric_calls_used", 0)),
            "history": list(prev.get("history", [])),
        }
        self._count_faults()

    def _count_faults(self) -> None:
        if self.guards:
            s, r = self.guards
            self.state.update(student_calls=s.calls, failed_student_calls=s.failed, reflection_calls=r.calls,
                              failed_reflection_calls=r.failed)
        if self.proposals:
            self.state.update(proposals=self.proposals.started, failed_proposals=self.proposals.failed)

    def fault_metrics(self) -> dict[str, float]:
        """The fault counts as MLflow metrics."""
        self._count_faults()
        keys = ("failed_student_calls", "failed_reflection_calls", "failed_proposals", "proposals")
        return {k: float(self.state[k]) for k in keys if k in self.state}  # type: ignore[literal-required]

    def spend_metrics(self) -> dict[str, float]:
        """What the run spent so far, as MLflow metrics: ``spent_usd`` (= ``optimization_cost_usd``, the providers'
        bill over all attempts; cache hits are free), by role, the calls answered from the cache, and this
        attempt's tokens."""
        s, r = self.student, self.reflection
        student, reflection = s.update(), r.update()
        return {"spent_usd": student + reflection, "optimization_cost_usd": student + reflection,
                "student_cost_usd": student, "reflection_cost_usd": reflection,
                "cached_calls": float(self.prev_cached + s.cached_calls + r.cached_calls),
                "student_input_tokens": float(s.input_tokens), "student_output_tokens": float(s.output_tokens),
                "reflection_input_tokens": float(r.input_tokens), "reflection_output_tokens": float(r.output_tokens)}

    def log_spend(self) -> None:
        """Log the spend and fault counts so far to the run (at :meth:`step`); never raises. Called while the run
        goes and once more wherever it ends (finished, failed, cancelled, capped, interrupted)."""
        if not (self.store and self.run_id):
            return
        try:
            self.store.log_metrics(self.run_id, {**self.spend_metrics(), **self.fault_metrics()}, step=self.step())
        except Exception as exc:  # noqa: BLE001 - the spend is also in progress.json
            logger.warning("could not log the spend to MLflow: %s", exc)

    def step(self) -> int:
        """The MLflow step of a final value: the metric calls used, the highest step the run's series reached (MLflow
        shows a metric's value at its highest step, so a final value logged at step 0 would hide behind them)."""
        return int(self.state["metric_calls_used"])

    def total_cost(self) -> float:
        return self.student.update() + self.reflection.update()

    def emit(self, force: bool = False, **changes: Any) -> None:
        with self._lock:
            self.state.update(changes)  # type: ignore[typeddict-item]
            now = time.time()
            if not force and now - self._last_emit < self.min_interval_s:
                return
            self._last_emit = now
            self.state["elapsed_s"] = self.prev_elapsed + (now - self.started)
            self.state["student_cost_usd"] = self.student.update()
            self.state["reflection_cost_usd"] = self.reflection.update()
            self.state["total_cost_usd"] = self.state["student_cost_usd"] + self.state["reflection_cost_usd"]
            self.state["cached_calls"] = self.prev_cached + self.student.cached_calls + self.reflection.cached_calls
            self.state["updated_at"] = now
            self._count_faults()
            snapshot = json.loads(json.dumps(self.state, default=str))
            log_now = now - self._last_logged >= SPEND_LOG_S
            if log_now:
                self._last_logged = now
        try:
            self.sink(snapshot)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - progress must never break a run
            logger.warning("progress sink failed: %s", exc)
        if log_now:
            self.log_spend()

    def _point(self, val_score: float | None = None) -> None:
        self.state["history"].append({
            "t": round(time.time() - self.started + self.prev_elapsed, 3),
            "metric_calls": self.state["metric_calls_used"], "iteration": self.state["iteration"],
            "best_score": self.state["best_val_score"], "val_score": val_score,
        })

    # GEPA callback methods (gepa.core.callbacks.GEPACallback)
    def on_optimization_start(self, event: dict[str, Any]) -> None:
        self.emit(force=True, phase="optimizing", message=FIRST_CALLS)
        threading.Thread(target=self._heartbeat, name="progress-heartbeat", daemon=True).start()

    def _heartbeat(self) -> None:
        """Until the search ends: the elapsed time, the spend and the calls so far, every HEARTBEAT_S, so the page
        moves from the first second (GEPA reports nothing while it scores the starting program)."""
        while self.state.get("phase") == "optimizing":
            time.sleep(HEARTBEAT_S)
            if self.state.get("phase") != "optimizing":
                return
            first = not self.state.get("metric_calls_used")
            calls = int(self.state.get("student_calls") or 0)
            self.emit(message=f"{FIRST_CALLS} ({calls:,} student calls so far)" if first else "")

    def on_iteration_start(self, event: dict[str, Any]) -> None:
        self.emit(iteration=int(event.get("iteration", 0)))

    def on_budget_updated(self, event: dict[str, Any]) -> None:
        self.emit(metric_calls_used=int(event.get("metric_calls_used", 0)))

    def on_valset_evaluated(self, event: dict[str, Any]) -> None:
        score = float(event.get("average_score", 0.0))
        if int(event.get("iteration", -1)) == 0:  # the seed's evaluation: GEPA counts it before its budget hook exists
            self.state["metric_calls_used"] = max(int(self.state["metric_calls_used"]),
                                                  int(event.get("num_examples_evaluated", 0)))
        best = self.state.get("best_val_score")
        self.state["candidates"] = max(self.state.get("candidates", 0), int(event.get("candidate_idx", 0)) + 1)
        if best is None or score > best:
            self.state["best_val_score"] = score
        self._point(score)
        self.emit(force=True)
        if self.store and self.run_id:
            try:
                self.store.log_metrics(self.run_id, {
                    "val_score": score, "best_val_score": float(self.state["best_val_score"] or 0.0),
                    "metric_calls_used": self.state["metric_calls_used"], "candidates": self.state["candidates"],
                    "running_cost_usd": self.state["total_cost_usd"], **self.spend_metrics(), **self.fault_metrics(),
                }, step=self.state["metric_calls_used"])
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not log progress to MLflow: %s", exc)

    def on_iteration_end(self, event: dict[str, Any]) -> None:
        if self.proposals:
            self.proposals.close_iteration()
        self.emit(force=True, iteration=int(event.get("iteration", 0)))

    def on_proposal_start(self, event: dict[str, Any]) -> None:
        if self.proposals:
            self.proposals.start()

    def on_proposal_end(self, event: dict[str, Any]) -> None:
        if self.proposals:
            self.proposals.end(event.get("new_instructions"))
        self.emit()


