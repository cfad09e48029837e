"""Evaluate a program with one model on a set of examples: per-example records, cost, and aggregates.

Every example ends ``correct``, ``wrong`` or ``failed`` with a kind (core.lm.breaker.FAILURE_KINDS): an answer
that names no label is a ``parse`` failure, not a wrong answer. Calls that fail for a passing reason (rate
limit, server error, timeout, unreachable) are retried after the provider's Retry-After or a backoff; a
:class:`~core.lm.breaker.CircuitBreaker` counts each call's final outcome (a 429 answered on its retry is a retried
success, counted in ``retried``, not a failure; a try that got no reply counts at once) and stops the run when the
provider is gone, without waiting for the calls still in flight. Records are appended to a JSONL file as they complete,
so a killed run keeps what it finished, and ``resume=True`` goes on from there (redoing only provider failures).
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

import dspy
import pandas as pd

from core.evaluation.records import RECORD_COLUMNS, EvalRecord, aggregate, load_for_resume
from core.evaluation.records import failure_counts as failure_counts  # re-exported
from core.evaluation.records import read_records as read_records  # re-exported
from core.evaluation.scorer import task_scorer
from core.lm.breaker import (
    PERMANENT_KINDS,
    RETRYABLE_KINDS,
    SCORING_KINDS,
    BreakerSettings,
    CircuitBreaker,
    classify_failure,
    retry_delay,
)
from core.lm.limits.slots import queue_clock
from core.lm.models import ModelSpec, Price, build_lm, redact, resolve_price
from core.program.answers import read_answer, shown_fields
from core.program.metric import normalize_label, parse_prediction
from core.scoring import Scorer, outcome_of
from core.scoring.user import program_failure
from core.tasks import Task

logger = logging.getLogger(__name__)

_POLL_S = 0.25  # how often the run looks at should_stop while it waits for answers
__all__ = ["RECORD_COLUMNS", "EvalOptions", "EvalRecord", "EvalResult", "aggregate", "evaluate", "failure_counts",
           "read_records"]


@dataclass(frozen=True)
class EvalResult:
    """Records and aggregates of one evaluation."""

    records: pd.DataFrame
    metrics: dict[str, float]
    per_label: pd.DataFrame
    confusion: pd.DataFrame
    labels: tuple[str, ...]
    price: Price = field(default_factory=lambda: Price(None, None, "unknown"))

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "price": asdict(self.price), "labels": list(self.labels)}


ProgressFn = Callable[[int, int, EvalRecord], None]


def _usage_of(entry: dict[str, Any]) -> tuple[int, int, bool]:
    """(input tokens, output tokens, cache hit) of one LM history entry."""
    cache_hit = not entry.get("usage")
    usage = entry.get("usage") or {}
    inp, out = usage.get("prompt_tokens"), usage.get("completion_tokens")
    response = entry.get("response")
    if (inp is None or out is None) and response is not None and getattr(response, "usage", None) is not None:
        inp, out = getattr(response.usage, "input_tokens", None), getattr(response.usage, "output_tokens", None)
    return int(inp or 0), int(out or 0), cache_hit


def _history_output(entry: dict[str, Any]) -> str:
    first = (entry.get("outputs") or [""])[0]
    return str(first.get("text", first) if isinstance(first, dict) else first)


@dataclass(frozen=True)
class _Setup:
    """What every try of every example shares (field names computed once, not per call)."""

    program: dspy.Module
    spec: ModelSpec
    price: Price
    input_field: str
    output_field: str
    labels: tuple[str, ...]
    task: Task | None = None  # a task beyond classification (read and scored through ``scorer``)
    scorer: Scorer | None = None
    judge_price: Price | None = None  # the rubric judge's price: its billed calls are the example's spend too


def _new_record(setup: _Setup, example: dspy.Example, idx: int) -> EvalRecord:
    if setup.task is None:
        return EvalRecord(idx=idx, text=str(example[setup.input_field]), gold=str(example[setup.output_field]))
    task = setup.task
    return EvalRecord(idx=idx, text=shown_fields(example, task.input_names), gold=shown_fields(example,
                      task.output_names))


def _answer(setup: _Setup, rec: EvalRecord, example: dspy.Example) -> None:
    """Run the program on the example and put its answer (and, beyond classification, its score) in ``rec``."""
    if setup.task is None or setup.scorer is None:
        # One reading of an answer for the evaluation and the served model (core.ship.pyfunc).
        parsed = parse_prediction(setup.program, example.inputs(), setup.output_field, setup.labels)
        rec.predicted, rec.raw_output, rec.error, rec.error_kind = parsed.label, parsed.raw, parsed.error, parsed.kind
        return
    task = setup.task
    answer = read_answer(setup.program, example.inputs(), task)
    rec.raw_output, rec.error, rec.error_kind = answer.raw, answer.error, answer.kind
    if answer.error:
        return
    rec.predicted = shown_fields(answer.values, task.output_names)
    with dspy.track_usage() as usage:  # the judge's calls (this thread's; answers from the cache bill nothing)
        score = setup.scorer(example.inputs(), {name: example[name] for name in task.output_names}, answer.values)
    judged = [entry for entries in usage.usage_data.values() for entry in entries]
    if judged and setup.judge_price is not None:
        tokens = [sum(int(e.get(k) or 0) for e in judged) for k in ("prompt_tokens", "completion_tokens")]
        rec.judge_calls, rec.judge_spent_usd = len(judged), setup.judge_price.cost(*tokens) or 0.0
    rec.score, rec.feedback = score.value, score.feedback[:2000]
    rec.field_scores = json.dumps(dict(score.fields)) if len(task.output_names) > 1 else None
    if score.outcome == "failed":
        rec.error, rec.error_kind = score.error, score.error_kind


def _run_one(setup: _Setup, lm: Any, example: dspy.Example, idx: int) -> tuple[EvalRecord, BaseException | None]:
    """One try of one example (``lm`` is already the context's LM): its record, and the exception of a failed
    call (for its Retry-After)."""
    rec = _new_record(setup, example, idx)
    gold = rec.gold
    failure: BaseException | None = None
    start_hist = len(lm.history)
    try:
        _answer(setup, rec, example)
    except Exception as exc:  # noqa: BLE001 - one example's failure is recorded, not raised
        failure = exc
        rec.error_kind = classify_failure(exc)
        rec.error = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, setup.spec)[:500]
        if rec.error_kind == "other" and (where := program_failure(exc)):  # your program's own code raised
            rec.error_kind, failure = "program", None
            rec.error = f"{type(exc).__name__}: {rec.error} ({where})"[:500]
    entries = lm.history[start_hist:]
    hits, billed = 0, [0, 0]  # billed: the tokens of the calls the provider answered (a cache hit is not billed)
    for entry in entries:
        inp, out, hit = _usage_of(entry)
        rec.input_tokens += inp
        rec.output_tokens += out
        hits += hit
        if not hit:
            billed[0], billed[1] = billed[0] + inp, billed[1] + out
    rec.calls, rec.cached_calls = len(entries), hits
    rec.cached = bool(entries) and hits == len(entries)
    if rec.error_kind == "parse" and entries:
        if rec.raw_output is None:
            rec.raw_output = _history_output(entries[-1])[:4000]
        if getattr(entries[-1].get("response"), "finish_reason", None) == "length":
            rec.error = "the answer was cut off at max_tokens (finish_reason 'length')"
    rec.cost_usd = setup.price.cost(rec.input_tokens, rec.output_tokens) or 0.0
    rec.spent_usd = (setup.price.cost(*billed) or 0.0) + rec.judge_spent_usd
    if setup.scorer is not None:
        rec.outcome = "failed" if rec.error_kind else outcome_of(rec.score or 0.0)
        rec.correct = rec.outcome == "correct"
        return rec, failure
    rec.correct = rec.predicted is not None and rec.predicted == normalize_label(gold, setup.labels)
    rec.outcome = "correct" if rec.correct else ("failed" if rec.error_kind else "wrong")
    return rec, failure


def _with_retries(run: Callable[[], tuple[EvalRecord, BaseException | None]], retries: int,
                  breaker: CircuitBreaker, abort: threading.Event) -> EvalRecord | None:
    """Try an example until it is answered, fails for good, or runs out of retries; None when the run was
    stopped while it waited to retry (the example is left for a resume)."""
    start, queued = time.perf_counter(), queue_clock()
    for attempt in range(retries + 1):
        rec, failure = run()
        if rec.error_kind not in RETRYABLE_KINDS or attempt == retries:
            break  # the call's final outcome: the only one the breaker counts as a success or failure
        if breaker.record_try(rec.error_kind, rec.error):  # counts only a try that got no reply at all
            abort.set()
        if abort.is_set() or abort.wait(retry_delay(failure, attempt)):
            return None
    if breaker.record(rec.error_kind, rec.error):
        abort.set()
    rec.attempts = attempt + 1
    rec.queue_s = queue_clock() - queued
    rec.latency_s = time.perf_counter() - start - rec.queue_s
    return rec


@dataclass(frozen=True)
class EvalOptions:
    """How an evaluation runs: ``threads`` at once, DSPy's ``cache`` on or off; ``lm`` overrides the LM built from
    the spec (tests pass fake LMs); ``on_record(done, total, record)`` follows each example; ``should_stop`` is
    polled while the run goes; ``records_path`` gets one JSON line per finished example, and ``resume`` goes on
    from the records there; ``breaker`` defaults to one per model from the environment's settings."""

    threads: int = 8
    cache: bool = True
    lm: Any = None
    on_record: ProgressFn | None = None
    should_stop: Callable[[], bool] | None = None
    records_path: str | Path | None = None
    resume: bool = False
    breaker: CircuitBreaker | None = None
    scorer: Scorer | None = None  # beyond classification: scores each answer (default: the task's own metrics)
    judge: ModelSpec | None = None  # the model of a task scored by a rubric judge


class _Run:
    """One evaluation under way: worker threads take the examples to do and try each (with retries); the calling
    thread gathers their records, writes them, follows ``should_stop`` and trips the breaker on a bad start."""

    def __init__(self, setup: _Setup, lm: Any, breaker: CircuitBreaker, options: EvalOptions,
                 done: dict[int, EvalRecord], total: int, todo: list[tuple[int, dspy.Example]]) -> None:
        self.setup, self.lm, self.breaker, self.options = setup, lm, breaker, options
        self.retries = max(0, int(setup.spec.num_retries))
        self.done, self.total, self.todo = done, total, todo
        self.results: queue.Queue[Any] = queue.Queue()
        self.halt = threading.Event()  # take no new example
        self.abort = threading.Event()  # and drop the retries in progress (stopped, or the breaker tripped)
        self.items, self.items_lock = iter(todo), threading.Lock()
        self.first_failures: list[EvalRecord] = []
        self.answered_here = 0

    FINISHED = object()  # a worker's last item

    def worker(self) -> None:
        # Our own retries (interruptible, counted by the breaker); one LM copy per thread, not per call.
        local_lm = self.lm.copy(num_retries=0) if hasattr(self.lm, "num_retries") else self.lm.copy()
        try:
            with dspy.context(lm=local_lm):
                while not self.halt.is_set() and not self.abort.is_set():
                    with self.items_lock:
                        item = next(self.items, None)
                    if item is None:
                        break
                    idx, ex = item
                    attempt = functools.partial(_run_one, self.setup, local_lm, ex, idx)
                    self.results.put(_with_retries(attempt, self.retries, self.breaker, self.abort))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            self.results.put(exc)
        finally:
            self.results.put(self.FINISHED)

    def accept(self, rec: EvalRecord, sink: IO[str] | None) -> None:
        self.done[rec.idx] = rec
        if sink:
            sink.write(json.dumps(vars(rec)) + "\n")
            sink.flush()
        if self.options.on_record:
            self.options.on_record(len(self.done), self.total, rec)
        if rec.outcome != "failed" or rec.error_kind in SCORING_KINDS:
            self.answered_here += 1
        elif rec.error_kind in PERMANENT_KINDS and not self.answered_here:
            self.first_failures.append(rec)
            if len(self.first_failures) >= min(3, len(self.todo)):
                self.breaker.trip(f"the first {len(self.first_failures)} calls all failed", rec.error_kind, rec.error)

    def go(self, sink: IO[str] | None) -> None:
        """Run the workers until every example is done, the run is stopped or the breaker trips."""
        # Daemon threads: a stopped run returns at once; a call still in flight ends with its timeout, unawaited.
        workers = [threading.Thread(target=self.worker, name=f"eval-{i}", daemon=True)
                   for i in range(max(1, min(self.options.threads, len(self.todo))) if self.todo else 0)]
        running, should_stop = len(workers), self.options.should_stop
        try:
            for t in workers:
                t.start()
            while running and not self.breaker.tripped:
                if should_stop and not self.halt.is_set() and should_stop():
                    self.halt.set()  # calls in flight still finish and are kept; examples waiting to retry are left
                    self.abort.set()
                try:
                    item = self.results.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is self.FINISHED:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                elif item is not None:
                    self.accept(item, sink)
            while self.breaker.tripped and not self.results.empty():  # keep what finished; in flight: not awaited
                item = self.results.get_nowait()
                if isinstance(item, EvalRecord):
                    self.accept(item, sink)
        finally:
            self.halt.set()
            if self.breaker.tripped:
                self.abort.set()


def _start_records(path: Path | None, resume: bool) -> dict[int, EvalRecord]:
    """The records a run starts from: those of a resume (see ``load_for_resume``), else none (an old file goes)."""
    if path and resume and path.exists():
        return load_for_resume(path)
    if path and path.exists():
        path.unlink()
    return {}


def evaluate(program: dspy.Module, spec: ModelSpec, examples: list[dspy.Example], task: Task,
             options: EvalOptions = EvalOptions()) -> EvalResult:
    """Run ``program`` with ``spec``'s model on ``examples`` (how: ``options``, see :class:`EvalOptions`).

    A stopped run keeps its records and its result says ``complete`` 0. Raises
    :class:`~core.lm.breaker.BreakerTripped` when the provider is gone (the records so far are kept).
    """
    price = resolve_price(spec)
    base_lm = options.lm if options.lm is not None else build_lm(spec, cache=options.cache)
    retries = max(0, int(spec.num_retries))
    scorer = None if task.is_classification else (options.scorer or task_scorer(task, options.judge,
                                                                                         cache=options.cache))
    setup = _Setup(program, spec, price, task.input_field, task.output_field, task.labels,
                   None if task.is_classification else task, scorer,
                   resolve_price(options.judge) if options.judge is not None else None)
    breaker = options.breaker or CircuitBreaker(spec.name, BreakerSettings.from_env(), tries_per_call=retries + 1)
    path = Path(options.records_path) if options.records_path else None
    done = _start_records(path, options.resume)
    run = _Run(setup, base_lm, breaker, options, done, len(examples),
               [(i, ex) for i, ex in enumerate(examples) if i not in done])
    sink = open(path, "a", encoding="utf-8") if path else None  # closed in finally
    try:
        run.go(sink)
    finally:
        if sink:
            sink.close()
    if breaker.tripped:
        logger.warning("%s: circuit breaker: %s; %d of %d examples recorded", spec.name, breaker.reason,
                       len(done), len(examples))
        raise breaker.error()
    records = pd.DataFrame([vars(done[i]) for i in sorted(done)], columns=RECORD_COLUMNS)
    metrics, per_label, confusion = aggregate(records, task.labels if task.is_classification else ())
    metrics["complete"] = float(len(records) == len(examples))
    return EvalResult(records=records, metrics=metrics, per_label=per_label, confusion=confusion,
                      labels=task.labels, price=price)
