"""Evaluate a program with one model on a set of examples: per-example records, cost, and aggregates.

Every example ends ``correct``, ``wrong`` or ``failed`` with a kind (core.lm.breaker.FAILURE_KINDS): an answer
that names no label is a ``parse`` failure, not a wrong answer. Calls that fail for a passing reason (rate
limit, server error, timeout, unreachable) are retried after the provider's Retry-After or a backoff; a
:class:`~core.lm.breaker.CircuitBreaker` counts each call's final outcome (a 429 answered on its retry is a retried
success, counted in ``retried``, not a failure; a try that got no reply counts at once) and stops the run when the
provider is gone, without waiting for the calls still in flight. Records are appended to a JSONL file as they complete, so a killed
run keeps what it finished, and ``resume=True`` goes on from there (redoing only provider failures).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import dspy
import pandas as pd

from core.analytics import stats
from core.lm.breaker import (
    FAILURE_KINDS,
    PERMANENT_KINDS,
    PROVIDER_KINDS,
    RETRYABLE_KINDS,
    BreakerSettings,
    CircuitBreaker,
    classify_failure,
    retry_delay,
)
from core.lm.limits.slots import queue_clock
from core.lm.models import ModelSpec, Price, build_lm, redact, resolve_price
from core.program.metric import normalize_label, parse_prediction
from core.tasks import Task

logger = logging.getLogger(__name__)

RECORD_COLUMNS = [
    "idx", "text", "gold", "predicted", "correct", "outcome", "raw_output", "latency_s", "queue_s",
    "input_tokens", "output_tokens", "cost_usd", "cached", "calls", "attempts", "error", "error_kind", "cached_calls",
]
_POLL_S = 0.25  # how often the run looks at should_stop while it waits for answers


@dataclass
class EvalRecord:
    """What happened on one example."""

    idx: int
    text: str
    gold: str
    predicted: str | None = None
    correct: bool = False
    outcome: str = "wrong"  # correct | wrong | failed (then error_kind says why)
    raw_output: str | None = None  # what the model wrote when it could not be parsed
    latency_s: float = 0.0  # the whole example, retries included, less its queue_s
    queue_s: float = 0.0  # seconds its calls waited for a free slot of a local server (core.lm.limits.slots)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # tokens x price, cached calls included (what the calls cost at list price)
    cached: bool = False  # every LM call of this example was served from DSPy's cache (nothing spent)
    calls: int = 0  # LM calls that got an answer
    attempts: int = 1  # tries of the example (1 + retries used)
    error: str | None = None
    error_kind: str | None = None
    cached_calls: int = 0  # LM calls of this example answered from DSPy's cache


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


def _run_one(setup: _Setup, lm: Any, example: dspy.Example, idx: int) -> tuple[EvalRecord, BaseException | None]:
    """One try of one example (``lm`` is already the context's LM): its record, and the exception of a failed
    call (for its Retry-After)."""
    gold = str(example[setup.output_field])
    rec = EvalRecord(idx=idx, text=str(example[setup.input_field]), gold=gold)
    failure: BaseException | None = None
    start_hist = len(lm.history)
    try:
        # One reading of an answer for the evaluation and the served model (core.ship.pyfunc).
        parsed = parse_prediction(setup.program, example.inputs(), setup.output_field, setup.labels)
        rec.predicted, rec.raw_output, rec.error, rec.error_kind = parsed.label, parsed.raw, parsed.error, parsed.kind
    except Exception as exc:  # noqa: BLE001 - one example's failure is recorded, not raised
        failure = exc
        rec.error_kind = classify_failure(exc)
        rec.error = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, setup.spec)[:500]
    entries = lm.history[start_hist:]
    hits = 0
    for entry in entries:
        inp, out, hit = _usage_of(entry)
        rec.input_tokens += inp
        rec.output_tokens += out
        hits += hit
    rec.calls, rec.cached_calls = len(entries), hits
    rec.cached = bool(entries) and hits == len(entries)
    if rec.error_kind == "parse" and entries:
        if rec.raw_output is None:
            rec.raw_output = _history_output(entries[-1])[:4000]
        if getattr(entries[-1].get("response"), "finish_reason", None) == "length":
            rec.error = "the answer was cut off at max_tokens (finish_reason 'length')"
    rec.cost_usd = setup.price.cost(rec.input_tokens, rec.output_tokens) or 0.0
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


def _record_from_row(row: dict[str, Any]) -> EvalRecord:
    """A saved record (NaN read back as a missing value; records older than ``outcome`` get one)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items() if k in RECORD_COLUMNS}
    rec = EvalRecord(**clean)
    rec.idx = int(rec.idx)
    rec.correct = bool(rec.correct)
    rec.attempts = int(rec.attempts or 1)
    rec.cached_calls = int(rec.cached_calls or 0)  # records older than cached_calls: none counted
    rec.queue_s = float(rec.queue_s or 0.0)  # records older than queue_s: none measured
    if rec.outcome not in ("correct", "wrong", "failed"):
        rec.outcome = "correct" if rec.correct else ("failed" if rec.error_kind else "wrong")
    return rec


def read_records(path: str | Path) -> pd.DataFrame:
    """Records saved as JSONL, one per example (a later line for the same example wins; a torn last line from
    a killed process is skipped)."""
    rows: dict[int, dict[str, Any]] = {}
    path = Path(path)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                rows[int(row["idx"])] = row
            except (ValueError, KeyError, TypeError):
                continue
    records = [asdict(_record_from_row(r)) for _, r in sorted(rows.items())]
    return pd.DataFrame(records, columns=RECORD_COLUMNS)


def failure_counts(records: pd.DataFrame) -> dict[str, int]:
    """Failed examples by kind (every kind of FAILURE_KINDS, 0 when none)."""
    failed = records.loc[records["outcome"] == "failed", "error_kind"].fillna("other") if len(records) else []
    counts = pd.Series(failed, dtype="object").value_counts()
    return {k: int(counts.get(k, 0)) for k in FAILURE_KINDS}


def aggregate(records: pd.DataFrame, labels: tuple[str, ...]) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Aggregates of records: accuracy over all examples (failures count as wrong, + Wilson 95% interval),
    failures by kind, accuracy over answered examples, macro-F1, tokens, cost, latency; ``cached`` examples (wholly
    from DSPy's cache), ``cached_calls`` and ``retried`` examples (that took more than one try)."""
    n = len(records)
    correct = int(records["correct"].astype(bool).sum()) if n else 0
    by_kind = failure_counts(records)
    failed = sum(by_kind.values())
    answered = n - failed
    low, high = stats.wilson_interval(correct, n)
    gold = records["gold"].tolist()
    pred = [p if isinstance(p, str) else None for p in records["predicted"].tolist()]
    cost = float(records["cost_usd"].sum()) if n else 0.0
    spent = float(records.loc[~records["cached"].astype(bool), "cost_usd"].sum()) if n else 0.0
    latencies = records["latency_s"].astype(float).tolist()
    queued = records["queue_s"].fillna(0.0).astype(float).tolist() if "queue_s" in records else [0.0] * n
    metrics = {
        "n": float(n),
        "correct": float(correct),
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "failed": float(failed),
        "failure_rate": failed / n if n else 0.0,
        **{f"failed_{k}": float(v) for k, v in by_kind.items()},
        "answered": float(answered),
        "accuracy_answered": correct / answered if answered else float("nan"),
        "macro_f1": stats.macro_f1(gold, pred, labels) if n else 0.0,
        "input_tokens": float(records["input_tokens"].sum()) if n else 0.0,
        "output_tokens": float(records["output_tokens"].sum()) if n else 0.0,
        "cost_usd": cost,
        "spent_usd": spent,
        "cost_per_1k": cost / n * 1000 if n else 0.0,
        "p50_latency_s": stats.percentile(latencies, 50),
        "p95_latency_s": stats.percentile(latencies, 95),
        "p50_queue_s": stats.percentile(queued, 50),
        "errors": float(failed),
        "parse_failures": float(by_kind["parse"]),
        "cached": float(records["cached"].astype(bool).sum()) if n else 0.0,
        "cached_calls": float(records["cached_calls"].fillna(0).sum()) if n else 0.0,
        "retried": float((records["attempts"].fillna(1).astype(int) > 1).sum()) if n else 0.0,
        "lm_calls": float(records["calls"].sum()) if n else 0.0,
    }
    per_label = stats.per_label_metrics(gold, pred, labels)
    confusion = stats.confusion_matrix(gold, pred, labels)
    return metrics, per_label, confusion


def _load_for_resume(path: Path) -> dict[int, EvalRecord]:
    """The records a resume keeps (answers, and failures of the model's own answer); provider failures are
    dropped to be tried again. The file is rewritten with just those."""
    kept = {}
    for row in read_records(path).to_dict("records"):
        rec = _record_from_row(row)
        if rec.outcome != "failed" or rec.error_kind not in PROVIDER_KINDS:
            kept[rec.idx] = rec
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(vars(r)) + "\n" for r in kept.values()), encoding="utf-8")
    tmp.replace(path)
    return kept


def evaluate(
    program: dspy.Module,
    spec: ModelSpec,
    examples: list[dspy.Example],
    task: Task,
    *,
    threads: int = 8,
    cache: bool = True,
    lm: Any = None,
    records_path: str | Path | None = None,
    resume: bool = False,
    on_record: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    breaker: CircuitBreaker | None = None,
) -> EvalResult:
    """Run ``program`` with ``spec``'s model on ``examples`` in ``threads`` threads.

    ``lm`` overrides the LM built from ``spec`` (tests pass fake LMs); ``records_path`` gets one JSON line per
    finished example; ``should_stop`` is polled while the run goes (a stopped run keeps its records and its
    result says ``complete`` 0). Raises :class:`~core.lm.breaker.BreakerTripped` when the provider is gone (the
    records so far are kept); ``breaker`` defaults to one per model from the environment's settings.
    """
    price = resolve_price(spec)
    base_lm = lm if lm is not None else build_lm(spec, cache=cache)
    retries = max(0, int(spec.num_retries))
    setup = _Setup(program, spec, price, task.input_field, task.output_field, task.labels)
    breaker = breaker or CircuitBreaker(spec.name, BreakerSettings.from_env(), tries_per_call=retries + 1)
    path = Path(records_path) if records_path else None
    done: dict[int, EvalRecord] = {}
    if path and resume and path.exists():
        done = _load_for_resume(path)
    elif path and path.exists():
        path.unlink()
    todo = [(i, ex) for i, ex in enumerate(examples) if i not in done]
    total = len(examples)
    sink = open(path, "a", encoding="utf-8") if path else None  # closed in finally
    results: queue.Queue[Any] = queue.Queue()
    halt = threading.Event()  # take no new example
    abort = threading.Event()  # and drop the retries in progress (stopped, or the breaker tripped)
    items = iter(todo)
    items_lock = threading.Lock()
    finished = object()

    def worker() -> None:
        # Our own retries (interruptible, counted by the breaker); one LM copy per thread, not per call.
        local_lm = base_lm.copy(num_retries=0) if hasattr(base_lm, "num_retries") else base_lm.copy()
        try:
            with dspy.context(lm=local_lm):
                while not halt.is_set() and not abort.is_set():
                    with items_lock:
                        item = next(items, None)
                    if item is None:
                        break
                    idx, ex = item
                    attempt = functools.partial(_run_one, setup, local_lm, ex, idx)
                    results.put(_with_retries(attempt, retries, breaker, abort))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            results.put(exc)
        finally:
            results.put(finished)

    # Daemon threads: a stopped run returns at once; a call still in flight ends with its timeout, unawaited.
    workers = [threading.Thread(target=worker, name=f"eval-{i}", daemon=True)
               for i in range(max(1, min(threads, len(todo))) if todo else 0)]
    first_failures: list[EvalRecord] = []
    answered_here = 0
    running = len(workers)

    def accept(rec: EvalRecord) -> None:
        nonlocal answered_here
        done[rec.idx] = rec
        if sink:
            sink.write(json.dumps(vars(rec)) + "\n")
            sink.flush()
        if on_record:
            on_record(len(done), total, rec)
        if rec.outcome != "failed" or rec.error_kind == "parse":
            answered_here += 1
        elif rec.error_kind in PERMANENT_KINDS and not answered_here:
            first_failures.append(rec)
            if len(first_failures) >= min(3, len(todo)):
                breaker.trip(f"the first {len(first_failures)} calls all failed", rec.error_kind, rec.error)

    try:
        for t in workers:
            t.start()
        while running and not breaker.tripped:
            if should_stop and not halt.is_set() and should_stop():
                halt.set()  # calls in flight still finish and are kept; examples waiting to retry are left
                abort.set()
            try:
                item = results.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is finished:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            elif item is not None:
                accept(item)
        while breaker.tripped and not results.empty():  # keep what finished meanwhile; calls in flight: not awaited
            item = results.get_nowait()
            if isinstance(item, EvalRecord):
                accept(item)
    finally:
        halt.set()
        if breaker.tripped:
            abort.set()
        if sink:
            sink.close()
    if breaker.tripped:
        logger.warning("%s: circuit breaker: %s; %d of %d examples recorded", spec.name, breaker.reason,
                       len(done), total)
        raise breaker.error()

    records = pd.DataFrame([vars(done[i]) for i in sorted(done)], columns=RECORD_COLUMNS)
    metrics, per_label, confusion = aggregate(records, task.labels)
    metrics["complete"] = float(len(records) == total)
    return EvalResult(records=records, metrics=metrics, per_label=per_label, confusion=confusion,
                      labels=task.labels, price=price)
