"""The search record of an optimization (``search.json``): its shape, how it is read back, and the trimming of
what GEPA hands its callbacks to what a page can show. :mod:`core.optimize.search` fills it."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

from core.config.secrets import scrub

logger = logging.getLogger(__name__)

SEARCH_FILE = "search.json"
VERSION = 1
TEXT_CAP = 2000  # a feedback row's texts, as a page shows them
INSTRUCTION_CAP = 4000  # a proposal's instruction (a candidate keeps its full text)
VAL_TEXT_CAP = 500  # a validation example's text, for the grid's hover
FEEDBACK_ROWS = 10  # feedback rows kept per proposal
ERROR_CAP = 500  # the first callback error's message, as kept
ERRORS_METRIC = "search_callback_errors"  # the run's metric: callback errors of its search record
Role = Literal["student_train", "student_val", "reflection", "judge"]
ROLES: tuple[Role, ...] = ("student_train", "student_val", "reflection", "judge")


class RoleSpend(TypedDict):
    calls: int
    metric_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class Candidate(TypedDict):
    idx: int
    parents: list[int]
    kind: Literal["seed", "reflection", "merge"]
    instructions: dict[str, str]
    val_score: float | None
    val_scores: list[float | None] | None  # aligned with the record's val_ids
    metric_calls: int  # budget spent when it was found
    iteration: int


class FeedbackRow(TypedDict):
    text: str
    gold: str
    predicted: str
    feedback: str


class Proposal(TypedDict):
    iteration: int
    kind: Literal["reflection", "merge"]
    parents: list[int]
    minibatch_ids: list[Any]
    parent_scores: list[float | None]
    new_scores: list[float | None]
    accepted: bool
    new_idx: int | None
    reason: str
    instructions: dict[str, str]
    feedback: list[FeedbackRow]


class RecordErrors(TypedDict):
    count: int  # callbacks that raised (each is left out of the record: it may miss candidates or proposals)
    first: str | None  # the first one's "callback: Type: message", scrubbed and capped


class SearchRecord(TypedDict):
    version: int
    components: list[str]
    val_ids: list[Any]
    val_texts: list[str]
    candidates: list[Candidate]
    best_idx: int | None
    pareto_front: list[int]
    proposals: list[Proposal]
    roles: dict[str, RoleSpend]
    errors: RecordErrors  # absent from records written before it was counted


class CallbackErrors:
    """The recorder's own failures: a callback never raises into GEPA, but each failure is counted and the first
    kept, so an incomplete record says so (:func:`incomplete_note`) instead of passing for a whole one."""

    def __init__(self, saved: Mapping[str, Any] | None = None) -> None:
        self.count = int((saved or {}).get("count") or 0)
        self.first: str | None = (saved or {}).get("first") or None

    def note(self, where: str, exc: BaseException) -> None:
        self.count += 1
        if self.first is None:
            self.first = trim(scrub(f"{where}: {type(exc).__name__}: {exc}"), ERROR_CAP)

    def to_dict(self) -> RecordErrors:
        return {"count": self.count, "first": self.first}


def incomplete_note(record: Mapping[str, Any]) -> str | None:
    """"search record incomplete: N callback errors (first: ...)" for a record whose callbacks failed, else None."""
    errors = record.get("errors") or {}
    count = int(errors.get("count") or 0) if isinstance(errors, Mapping) else 0
    if not count:
        return None
    first = errors.get("first")
    return (f"search record incomplete: {count} callback error{'s' if count != 1 else ''}"
            + (f" (first: {first})" if first else ""))


def empty_record(errors: CallbackErrors) -> SearchRecord:
    """A record with nothing in it but its errors (the record itself could not be built)."""
    return {"version": VERSION, "components": [], "val_ids": [], "val_texts": [], "candidates": [], "best_idx": None,
            "pareto_front": [], "proposals": [], "roles": empty_roles(), "errors": errors.to_dict()}


def open_proposal(kind: str, iteration: int, parents: list[int], **fields: Any) -> dict[str, Any]:
    """A proposal being made (fields starting with ``_`` are the recorder's own and never saved)."""
    return {"iteration": iteration, "kind": kind, "parents": parents, "minibatch_ids": [], "parent_scores": None,
            "new_scores": None, "accepted": None, "new_idx": None, "reason": "", "instructions": None, "feedback": [],
            "_gold": {}, "_started": kind == "merge", **fields}


def closed_proposal(p: dict[str, Any], why: str = "") -> Proposal:
    """The record's copy of a proposal its iteration ended with: undecided reads as rejected, with why."""
    if p["accepted"] is None:
        p["accepted"] = False
        p["reason"] = why or ("the reflection model gave no usable instruction" if p["instructions"] is None
                              else "the iteration ended before GEPA decided")
    return {k: (v if v is not None or k == "new_idx" else ([] if k != "instructions" else {}))  # type: ignore[return-value]
            for k, v in p.items() if not k.startswith("_")}


def empty_roles() -> dict[str, RoleSpend]:
    return {r: {"calls": 0, "metric_calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0} for r in ROLES}


def load_record(path: Path) -> SearchRecord | None:
    """The record saved at ``path`` (a ``search.json``), or None when there is none or it cannot be read."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable search record %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        logger.warning("ignoring search record %s of another version", path)
        return None
    return data  # type: ignore[return-value]


def trim(text: Any, limit: int = TEXT_CAP) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def score_value(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def json_id(value: Any) -> Any:
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else str(value)


def fields_text(obj: Any) -> str:
    """A mapping's values as one text (one field: its value alone), or the object's text."""
    if isinstance(obj, Mapping):
        items = [(str(k), str(v)) for k, v in obj.items()]
        return items[0][1] if len(items) == 1 else "\n".join(f"{k}: {v}" for k, v in items)
    return "" if obj is None else str(obj)


def example_text(example: Any) -> str:
    try:
        return fields_text(dict(example.inputs()))
    except Exception:  # noqa: BLE001 - not a dspy.Example with inputs
        return fields_text(example)


def example_gold(example: Any) -> str:
    try:
        return fields_text(dict(example.labels()))
    except Exception:  # noqa: BLE001
        return ""


def merge_minibatch(valset: Sequence[Any], candidates: Mapping[int, Candidate], val_ids: Sequence[Any],
                    inputs: Sequence[Any], parents: list[int]) -> dict[str, Any]:
    """A merge is checked on validation examples: their ids (matched by text) and the better parent's scores."""
    index = {example_text(ex): i for i, ex in enumerate(valset)}
    ids = [index.get(example_text(ex)) for ex in inputs]
    rows = []
    for parent in parents:
        cand = candidates.get(parent)
        by_id = dict(zip(val_ids, cand["val_scores"] or [], strict=False)) if cand else {}
        rows.append([by_id.get(i) for i in ids])
    best = max(rows, key=lambda r: sum(s or 0.0 for s in r), default=[])
    return {"minibatch_ids": ids, "parent_scores": best}


def feedback_rows(dataset: Mapping[str, Any], gold_by_text: Mapping[str, str]) -> list[FeedbackRow]:
    """The reflective dataset GEPA built (component -> rows of Inputs, Generated Outputs, Feedback) as at most
    FEEDBACK_ROWS rows of capped text; the gold label comes from the minibatch's examples, matched by text."""
    rows: list[FeedbackRow] = []
    for items in dataset.values():
        for item in items or []:
            if len(rows) >= FEEDBACK_ROWS:
                return rows
            if not isinstance(item, Mapping):
                continue
            text = fields_text(item.get("Inputs"))
            rows.append({"text": trim(text), "gold": trim(gold_by_text.get(text, "")),
                         "predicted": trim(fields_text(item.get("Generated Outputs"))),
                         "feedback": trim(item.get("Feedback"))})
    return rows


class SpendReader:
    """What one model spent since the last look: its CostMeter's totals, and its calls counted from its history."""

    def __init__(self, meter: Any) -> None:
        self.meter = meter
        self.cost, self.input_tokens, self.output_tokens = meter.total, meter.input_tokens, meter.output_tokens
        self._seen: str | None = None  # as the meter starts: every call in its history is this attempt's

    def take(self) -> tuple[int, int, int, float]:
        total = self.meter.update()
        history = list(getattr(self.meter.lm, "history", None) or [])
        calls = 0
        for entry in reversed(history):
            if entry.get("uuid") == self._seen:
                break
            calls += 1
        if history:
            self._seen = history[-1].get("uuid")
        inp, out = self.meter.input_tokens, self.meter.output_tokens
        delta = (calls, inp - self.input_tokens, out - self.output_tokens, total - self.cost)
        self.cost, self.input_tokens, self.output_tokens = total, inp, out
        return delta
