"""Evaluate a program with one model on a set of examples: per-example records, cost, and aggregates.

A failure on one example (timeout, provider error, unparseable output) is a wrong answer with its
reason. Only a systemic failure (bad key, unknown model, unreachable server on every first call)
stops the run, with a ProviderError. Records are appended to a JSONL file as they complete, so a
killed run keeps what it finished, and ``resume=True`` skips what is already there.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import dspy
import pandas as pd

from core.analytics import stats
from core.errors import ProviderError
from core.metric import normalize_label
from core.models import ModelSpec, Price, build_lm, classify_error, redact, resolve_price
from core.tasks import Task

logger = logging.getLogger(__name__)

SYSTEMIC_KINDS = ("auth", "not_found", "unreachable", "config")
RECORD_COLUMNS = [
    "idx", "text", "gold", "predicted", "correct", "raw_output", "latency_s",
    "input_tokens", "output_tokens", "cost_usd", "cached", "calls", "error", "error_kind",
]


@dataclass
class EvalRecord:
    """What happened on one example."""

    idx: int
    text: str
    gold: str
    predicted: str | None = None
    correct: bool = False
    raw_output: str | None = None  # what the model wrote when it could not be parsed
    latency_s: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # tokens x price, cached calls included (what the calls cost at list price)
    cached: bool = False  # every LM call of this example was served from DSPy's cache (nothing spent)
    calls: int = 0
    error: str | None = None
    error_kind: str | None = None


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
    inp = usage.get("prompt_tokens")
    out = usage.get("completion_tokens")
    response = entry.get("response")
    if (inp is None or out is None) and response is not None and getattr(response, "usage", None) is not None:
        inp = getattr(response.usage, "input_tokens", None)
        out = getattr(response.usage, "output_tokens", None)
    return int(inp or 0), int(out or 0), cache_hit


def _history_output(entry: dict[str, Any]) -> str:
    outputs = entry.get("outputs") or []
    if outputs:
        first = outputs[0]
        return str(first.get("text", first) if isinstance(first, dict) else first)
    return ""


def _run_one(program: dspy.Module, lm: Any, example: dspy.Example, idx: int, task: Task, price: Price,
             spec: ModelSpec) -> EvalRecord:
    gold = str(example[task.output_field])
    rec = EvalRecord(idx=idx, text=str(example[task.input_field]), gold=gold)
    start_hist = len(lm.history)
    start = time.perf_counter()
    try:
        with dspy.context(lm=lm):
            pred = program(**example.inputs())
        value = getattr(pred, task.output_field, None)
        rec.predicted = normalize_label(value, task.labels)
        if rec.predicted is None:
            rec.raw_output = str(value)
            rec.error, rec.error_kind = "answer is not one of the labels", "parse"
    except dspy.utils.exceptions.AdapterParseError as exc:
        rec.raw_output = str(exc.lm_response)[:4000]
        rec.error, rec.error_kind = "could not parse the answer", "parse"
    except Exception as exc:  # noqa: BLE001 - one example's failure is recorded, not raised
        kind, _ = classify_error(exc)
        rec.error = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, spec)[:500]
        rec.error_kind = kind
    rec.latency_s = time.perf_counter() - start
    entries = lm.history[start_hist:]
    hits = 0
    for entry in entries:
        inp, out, hit = _usage_of(entry)
        rec.input_tokens += inp
        rec.output_tokens += out
        hits += hit
    rec.calls = len(entries)
    rec.cached = bool(entries) and hits == len(entries)
    if rec.raw_output is None and rec.error_kind == "parse" and entries:
        rec.raw_output = _history_output(entries[-1])[:4000]
    rec.cost_usd = price.cost(rec.input_tokens, rec.output_tokens) or 0.0
    rec.correct = rec.predicted is not None and rec.predicted == normalize_label(gold, task.labels)
    return rec


def read_records(path: str | Path) -> pd.DataFrame:
    """Records saved as JSONL (a torn last line from a killed process is skipped)."""
    rows = []
    path = Path(path)
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return pd.DataFrame(rows, columns=RECORD_COLUMNS)


def aggregate(records: pd.DataFrame, labels: tuple[str, ...]) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame]:
    """Aggregates of records: accuracy (+ Wilson 95% interval), macro-F1, tokens, cost, latency."""
    n = len(records)
    correct = int(records["correct"].astype(bool).sum()) if n else 0
    low, high = stats.wilson_interval(correct, n)
    gold = records["gold"].tolist()
    pred = [p if isinstance(p, str) else None for p in records["predicted"].tolist()]
    cost = float(records["cost_usd"].sum()) if n else 0.0
    spent = float(records.loc[~records["cached"].astype(bool), "cost_usd"].sum()) if n else 0.0
    latencies = records["latency_s"].astype(float).tolist()
    metrics = {
        "n": float(n),
        "correct": float(correct),
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "macro_f1": stats.macro_f1(gold, pred, labels) if n else 0.0,
        "input_tokens": float(records["input_tokens"].sum()) if n else 0.0,
        "output_tokens": float(records["output_tokens"].sum()) if n else 0.0,
        "cost_usd": cost,
        "spent_usd": spent,
        "cost_per_1k": cost / n * 1000 if n else 0.0,
        "p50_latency_s": stats.percentile(latencies, 50),
        "p95_latency_s": stats.percentile(latencies, 95),
        "errors": float(records["error"].notna().sum()) if n else 0.0,
        "parse_failures": float((records["error_kind"] == "parse").sum()) if n else 0.0,
        "cached": float(records["cached"].astype(bool).sum()) if n else 0.0,
        "lm_calls": float(records["calls"].sum()) if n else 0.0,
    }
    per_label = stats.per_label_metrics(gold, pred, labels)
    confusion = stats.confusion_matrix(gold, pred, labels)
    return metrics, per_label, confusion


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
) -> EvalResult:
    """Run ``program`` with ``spec``'s model on ``examples`` in ``threads`` threads.

    ``lm`` overrides the LM built from ``spec`` (tests pass fake LMs); ``records_path`` gets one JSON
    line per finished example; ``should_stop`` is polled between examples (a stopped run keeps its records).
    """
    price = resolve_price(spec)
    base_lm = lm if lm is not None else build_lm(spec, cache=cache)
    done: dict[int, EvalRecord] = {}
    path = Path(records_path) if records_path else None
    if path and resume:
        for row in read_records(path).to_dict("records"):
            rec = EvalRecord(**{k: None if pd.isna(v) else v for k, v in row.items()})  # NaN: a missing value
            rec.idx = int(rec.idx)
            done[rec.idx] = rec
    elif path and path.exists():
        path.unlink()
    todo = [(i, ex) for i, ex in enumerate(examples) if i not in done]
    total = len(examples)
    lock = threading.Lock()
    local = threading.local()
    sink = open(path, "a", encoding="utf-8") if path else None  # closed in finally
    systemic: list[EvalRecord] = []
    successes = 0

    def work(idx: int, ex: dspy.Example) -> EvalRecord:
        if not hasattr(local, "lm"):
            local.lm = base_lm.copy()
        return _run_one(program, local.lm, ex, idx, task, price, spec)

    try:
        with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="eval") as pool:
            pending: set[Future[EvalRecord]] = set()
            queue = iter(todo)
            stop = False

            def submit_next() -> None:
                nonlocal stop
                if stop or (should_stop and should_stop()):
                    stop = True
                    return
                item = next(queue, None)
                if item is not None:
                    pending.add(pool.submit(work, *item))

            for _ in range(max(1, threads) * 2):
                submit_next()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    pending.discard(fut)
                    rec = fut.result()
                    with lock:
                        done[rec.idx] = rec
                        if sink:
                            sink.write(json.dumps(asdict(rec)) + "\n")
                            sink.flush()
                    if rec.error_kind in SYSTEMIC_KINDS:
                        systemic.append(rec)
                    elif rec.error_kind is None or rec.error_kind == "parse":
                        successes += 1
                    if on_record:
                        on_record(len(done), total, rec)
                    if not successes and len(systemic) >= min(3, len(todo)):
                        stop = True
                        first = systemic[0]
                        for f in pending:
                            f.cancel()
                        raise ProviderError(
                            f"{spec.name}: every call failed ({first.error_kind}): {first.error}",
                            classify_hint(first.error_kind),
                            first.error_kind or "other",
                        )
                    submit_next()
    finally:
        if sink:
            sink.close()

    records = pd.DataFrame([asdict(done[i]) for i in sorted(done)], columns=RECORD_COLUMNS)
    metrics, per_label, confusion = aggregate(records, task.labels)
    metrics["complete"] = float(len(records) == total)
    return EvalResult(records=records, metrics=metrics, per_label=per_label, confusion=confusion,
                      labels=task.labels, price=price)


def classify_hint(kind: str | None) -> str:
    return {
        "auth": "Check the API key variable of this model.",
        "not_found": "Check the model name: the provider does not know it.",
        "unreachable": "Check the base URL and that the server is running.",
        "config": "Fix the model's settings on the Models page.",
    }.get(kind or "", "")
