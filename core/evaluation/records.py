"""The records of an evaluation: one :class:`EvalRecord` per example, saved as JSONL while the run goes, read back
(for a resume, or a run that was killed), and aggregated into its metrics. ``core.evaluation.evaluate`` writes
them and re-exports these names.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.analytics import scores, stats
from core.analytics.flips import scores_of
from core.lm.breaker import FAILURE_KINDS, PROVIDER_KINDS

RECORD_COLUMNS = [
    "idx", "text", "gold", "predicted", "correct", "outcome", "raw_output", "latency_s", "queue_s",
    "input_tokens", "output_tokens", "cost_usd", "cached", "calls", "attempts", "error", "error_kind", "cached_calls",
    "spent_usd", "score", "field_scores", "feedback", "judge_calls", "judge_spent_usd",
]

@dataclass
class EvalRecord:
    """What happened on one example."""

    idx: int
    text: str
    gold: str
    predicted: str | None = None
    correct: bool = False
    outcome: str = "wrong"  # correct | partial | wrong | failed (then error_kind says why)
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
    spent_usd: float | None = None  # what its calls the provider answered cost (None: a record from before)
    score: float | None = None  # the metric's score in [0, 1] (None: failed, or a label record from before scores)
    field_scores: str | None = None  # JSON {output field: score} of a task with several outputs
    feedback: str | None = None  # what the metric said about the answer (a judge's rationale), beyond classification
    judge_calls: int = 0  # calls of a rubric judge the provider answered (billed) for this example
    judge_spent_usd: float = 0.0  # what they cost; part of spent_usd (not of cost_usd: the judge is not the program)


def _spent(records: pd.DataFrame) -> pd.Series:
    """Each example's spend: its billed calls' cost; a record from before ``spent_usd``: 0 when wholly cached,
    else its list-price cost."""
    before = records["cost_usd"].where(~records["cached"].astype(bool), 0.0)
    if "spent_usd" not in records:
        return before
    return pd.to_numeric(records["spent_usd"], errors="coerce").fillna(before)


def _record_from_row(row: dict[str, Any]) -> EvalRecord:
    """A saved record (NaN read back as a missing value; records older than ``outcome`` get one)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items() if k in RECORD_COLUMNS}
    rec = EvalRecord(**clean)
    rec.idx = int(rec.idx)
    rec.correct = bool(rec.correct)
    rec.attempts = int(rec.attempts or 1)
    rec.cached_calls = int(rec.cached_calls or 0)  # records older than cached_calls: none counted
    rec.queue_s = float(rec.queue_s or 0.0)  # records older than queue_s: none measured
    rec.judge_calls, rec.judge_spent_usd = int(rec.judge_calls or 0), float(rec.judge_spent_usd or 0.0)
    if rec.outcome not in ("correct", "partial", "wrong", "failed"):
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


def example_scores(records: pd.DataFrame) -> pd.Series:
    """Each example's score in [0, 1]: its metric's score; a failed example 0 (as accuracy counts it wrong); a label
    record from before scores: 1 when correct, else 0."""
    return pd.Series(scores_of(records), index=records.index, dtype=float)


def _score_metrics(records: pd.DataFrame) -> dict[str, float]:
    """Mean score with its 95 % interval (Wilson when every score is 0 or 1), the mean over answered examples,
    partial answers, and each output field's mean score (``score_field_<name>``)."""
    n = len(records)
    if not n:
        return {"score": 0.0, "score_ci_low": 0.0, "score_ci_high": 0.0, "partial": 0.0,
                "score_answered": float("nan")}
    values = example_scores(records)
    low, high = scores.mean_interval(values.tolist())
    answered = values[~records["outcome"].eq("failed")]
    out = {"score": float(values.mean()), "score_ci_low": low, "score_ci_high": high,
           "partial": float(records["outcome"].eq("partial").sum()),
           "score_answered": float(answered.mean()) if len(answered) else float("nan")}
    if "field_scores" in records and records["field_scores"].notna().any():
        table = pd.DataFrame([json.loads(v) if isinstance(v, str) else {} for v in records["field_scores"]])
        failed = records["outcome"].eq("failed").to_numpy()
        out |= {f"score_field_{name}": float(table[name].where(~failed, 0.0).fillna(0.0).mean())
                for name in table.columns}
    return out


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
    spent = float(_spent(records).sum()) if n else 0.0
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
        "macro_f1": stats.macro_f1(gold, pred, labels) if n and labels else 0.0,
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
        "judge_calls": float(records["judge_calls"].fillna(0).sum()) if n and "judge_calls" in records else 0.0,
        "judge_spent_usd": float(records["judge_spent_usd"].fillna(0).sum())
        if n and "judge_spent_usd" in records else 0.0,
        **_score_metrics(records),
    }
    if not labels:  # a task beyond classification: no label table
        return metrics, pd.DataFrame(), pd.DataFrame()
    per_label = stats.per_label_metrics(gold, pred, labels)
    confusion = stats.confusion_matrix(gold, pred, labels)
    return metrics, per_label, confusion


def load_for_resume(path: Path) -> dict[int, EvalRecord]:
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
