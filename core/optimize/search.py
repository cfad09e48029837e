"""What GEPA searched, recorded from its callbacks: every candidate, every proposal (accepted or not, with the
minibatch scores that decided it and the feedback the reflection model read), the Pareto front, and calls and
cost by role. Saved as ``<log_dir>/search.json`` at each iteration's end (a resumed run reloads it) and logged by
``run_optimization`` as the MLflow artifact ``search.json``.

Role attribution: at every callback event each model's CostMeter is read, and what it spent since the previous
event goes to the role the previous event opened (GEPA calls back from its main loop, between evaluations).
- student: between an EvaluationStart with ``capture_traces`` (GEPA's train minibatches: the parent's and the
  proposal's) and its EvaluationEnd -> ``student_train``; everything else -> ``student_val``: the seed's and each
  accepted candidate's full validation run (GEPA fires no evaluation events around those) and a merge's check on
  a validation subsample.
- reflection model: from a ProposalStart to the next event -> ``reflection`` (GEPA asks it for an instruction
  there and nowhere else); the rest of its spend is the LLM judge, which ``feedback="judge"`` sends through the
  reflection model while examples are scored -> ``judge``.
- metric calls: a BudgetUpdated right after a train minibatch's EvaluationEnd -> ``student_train``; the rest of
  GEPA's total -> ``student_val``.
Spend after the last saved iteration of a killed attempt is in the run's cost but not in its record.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Literal

from core.optimize.progress import CostMeter
from core.optimize.search_record import (
    ERRORS_METRIC,
    INSTRUCTION_CAP,
    SEARCH_FILE,
    VAL_TEXT_CAP,
    VERSION,
    CallbackErrors,
    Candidate,
    Proposal,
    Role,
    SearchRecord,
    SpendReader,
    closed_proposal,
    empty_record,
    empty_roles,
    example_gold,
    example_text,
    feedback_rows,
    json_id,
    load_record,
    merge_minibatch,
    open_proposal,
    score_value,
    trim,
)

logger = logging.getLogger(__name__)


def _event(fn: Callable[[SearchRecorder, Any], None]) -> Callable[[SearchRecorder, Any], None]:
    """A GEPA callback: settle spend first, under the lock; an error is counted in the record (its ``errors``)
    and logged, never raised into GEPA."""

    @functools.wraps(fn)
    def handler(self: SearchRecorder, event: Any) -> None:
        try:
            with self._lock:
                self._settle()
                self._reflecting = False  # only a ProposalStart opens the reflection window
                after_train, self._after_train = self._after_train, False
                if fn.__name__ == "on_budget_updated":
                    self._after_train = after_train
                fn(self, event)
        except Exception as exc:  # noqa: BLE001 - the record is an extra; the run goes on, the record says so
            self._failed_in(fn.__name__, exc)

    return handler


class SearchRecorder:
    """A GEPA callback that records the search (see the module's docstring); ``record()`` is the SearchRecord."""

    def __init__(self, meters: Sequence[CostMeter], log_dir: Path, *, valset: Sequence[Any] | None = None) -> None:
        self.path = Path(log_dir) / SEARCH_FILE
        self._lock = threading.RLock()
        self._student, self._reflection = SpendReader(meters[0]), SpendReader(meters[1])
        self._valset = list(valset or [])
        self._student_role: Role = "student_val"
        self._reflecting = self._after_train = self._train_window = False
        self._pending: list[dict[str, Any]] = []
        self._failed: set[str] = set()  # callbacks that failed once (warned once, then logged at debug level)
        self._budget = (0, 0)  # GEPA's last (metric calls used, delta)
        saved = load_record(self.path)
        rec: dict[str, Any] = dict(saved) if saved else {}
        self.components: list[str] = list(rec.get("components") or [])
        self.val_ids: list[Any] = list(rec.get("val_ids") or [])
        self.candidates: dict[int, Candidate] = {int(c["idx"]): c for c in rec.get("candidates") or []}
        self.best_idx: int | None = rec.get("best_idx")
        self.pareto_front: list[int] = list(rec.get("pareto_front") or [])
        self.proposals: list[Proposal] = list(rec.get("proposals") or [])
        self.errors = CallbackErrors(rec.get("errors"))
        self.roles = empty_roles()
        for role, spend in (rec.get("roles") or {}).items():
            if role in self.roles:
                self.roles[role].update(spend)  # type: ignore[typeddict-item]
        self._total = sum(int(s["metric_calls"]) for s in self.roles.values())
        if saved:
            logger.info("resuming the search record of %s: %d candidates, %d proposals", self.path.parent,
                        len(self.candidates), len(self.proposals))

    # The record -------------------------------------------------------------------------------

    def record(self) -> SearchRecord:
        """The record so far (a plain JSON-able dict); never raises (at worst, an empty record)."""
        try:
            with self._lock:
                self._settle()
                return self._build()
        except Exception as exc:
            logger.warning("search recorder: the record could not be built", exc_info=True)
            self.errors.note("record", exc)
            return empty_record(self.errors)

    def error_metrics(self) -> dict[str, float]:
        """The run's metric of this record's callback errors (0: the record is whole)."""
        return {ERRORS_METRIC: float(self.errors.count)}

    def current_role(self, model: Literal["student", "reflection"]) -> Role:
        """The role a call of ``model`` made now counts for (see the module's docstring)."""
        if model == "student":
            return self._student_role
        return "reflection" if self._reflecting else "judge"

    def _build(self) -> SearchRecord:
        train = self.roles["student_train"]["metric_calls"]
        self.roles["student_val"]["metric_calls"] = max(0, self._total - train)
        val_texts = [trim(example_text(self._valset[i]), VAL_TEXT_CAP)
                     if isinstance(i, int) and 0 <= i < len(self._valset) else "" for i in self.val_ids]
        candidates = [self.candidates[i] for i in sorted(self.candidates)]
        scored = [c for c in candidates if c["val_score"] is not None]
        best = max(scored, key=lambda c: c["val_score"])["idx"] if scored else self.best_idx  # type: ignore[arg-type,return-value]
        record: SearchRecord = {
            "version": VERSION, "components": self.components, "val_ids": self.val_ids, "val_texts": val_texts,
            "candidates": candidates, "best_idx": best, "pareto_front": sorted(self.pareto_front),
            "proposals": self.proposals, "roles": self.roles, "errors": self.errors.to_dict(),
        }
        return json.loads(json.dumps(record, default=str))  # a copy that shares nothing with the recorder

    def save(self) -> None:
        """Write the record to ``<log_dir>/search.json`` atomically (a resumed run reloads it)."""
        with self._lock:
            self._settle()
            text = json.dumps(self._build(), separators=(",", ":"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            logger.warning("could not save the search record to %s: %s", self.path, exc)

    # Spend by role ----------------------------------------------------------------------------

    def _settle(self) -> None:
        for spend, role in ((self._student, self._student_role),
                            (self._reflection, "reflection" if self._reflecting else "judge")):
            calls, inp, out, cost = spend.take()
            r = self.roles[role]
            r["calls"] += calls
            r["input_tokens"] += inp
            r["output_tokens"] += out
            r["cost_usd"] += cost

    # Candidates -------------------------------------------------------------------------------

    def _aligned(self, scores: Mapping[Any, Any]) -> list[float | None]:
        known = set(self.val_ids)
        self.val_ids += sorted({json_id(k) for k in scores} - known, key=lambda k: (isinstance(k, str), k))
        by_id = {json_id(k): score_value(v) for k, v in scores.items()}
        return [by_id.get(i) for i in self.val_ids]

    def _candidate(self, idx: int, instructions: Mapping[str, Any], parents: Sequence[Any],
                   scores: Mapping[Any, Any], metric_calls: int, iteration: int) -> None:
        ps = [int(p) for p in parents if p is not None]
        known = self.candidates.get(idx)
        values = [s for s in (score_value(v) for v in scores.values()) if s is not None]
        self.candidates[idx] = {
            "idx": idx, "parents": ps, "kind": "seed" if not ps else "merge" if len(ps) > 1 else "reflection",
            "instructions": {str(k): str(v) for k, v in instructions.items()},
            "val_score": sum(values) / len(values) if values else None,
            "val_scores": self._aligned(scores) if scores else None,
            "metric_calls": int(metric_calls), "iteration": known["iteration"] if known else iteration,
        }
        for c in self.candidates.values():  # val_ids may have grown: keep every row aligned
            if c["val_scores"] is not None and len(c["val_scores"]) < len(self.val_ids):
                c["val_scores"] = c["val_scores"] + [None] * (len(self.val_ids) - len(c["val_scores"]))

    def _reconcile(self, state: Any) -> None:
        """Take candidates, parents, scores, discovery budgets and the front from GEPA's state (authoritative)."""
        if state is None:
            return
        found_in = {}
        for trace in getattr(state, "full_program_trace", None) or []:
            for idx in trace.get("new_program_indices") or []:
                found_in[int(idx)] = int(trace.get("i", -1)) + 1
        discovery = list(getattr(state, "num_metric_calls_by_discovery", []))
        for idx, cand in enumerate(state.program_candidates):
            self._candidate(idx, cand, state.parent_program_for_candidate[idx], state.prog_candidate_val_subscores[idx],
                            discovery[idx] if idx < len(discovery) else 0, found_in.get(idx, 0))
        front = set()
        for programs in state.get_pareto_front_mapping().values():
            front.update(int(p) for p in programs)
        self.pareto_front = sorted(front)
        self._total = int(state.total_num_evals)

    # Proposals --------------------------------------------------------------------------------

    def _first(self, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
        return next((p for p in self._pending if test(p)), None)

    def _new_proposal(self, kind: str, iteration: int, parents: list[int], **fields: Any) -> dict[str, Any]:
        self._pending.append(open_proposal(kind, iteration, parents, **fields))
        return self._pending[-1]

    def _decide(self, proposal: dict[str, Any] | None, accepted: bool, reason: str = "",
                new_idx: int | None = None) -> None:
        if proposal is not None:
            proposal.update(accepted=accepted, reason=trim(reason), new_idx=new_idx)

    def _close_iteration(self, why: str = "") -> None:
        """Move this iteration's proposals to the record; one GEPA skipped (nothing to reflect on) is dropped."""
        self.proposals += [closed_proposal(p, why) for p in self._pending if p["_started"]]
        self._pending = []
        self._student_role = "student_val"

    def _failed_in(self, name: str, exc: Exception) -> None:
        """Count a callback's failure (a warning the first time per callback); an iteration's end still saves."""
        self.errors.note(name, exc)
        first = name not in self._failed
        self._failed.add(name)
        logger.log(logging.WARNING if first else logging.DEBUG, "search recorder: %s failed: %s", name, exc,
                   exc_info=first)
        if name in ("on_iteration_end", "on_optimization_end"):
            try:
                self.save()  # the copy a live page and a resume read says it is incomplete too
            except Exception:
                logger.debug("search recorder: could not save after a failure", exc_info=True)

    # GEPA callback methods (gepa.core.callbacks.GEPACallback) ---------------------------------

    @_event
    def on_optimization_start(self, event: Any) -> None:
        self.components = [str(k) for k in (event.get("seed_candidate") or {})] or self.components

    @_event
    def on_valset_evaluated(self, event: Any) -> None:
        iteration = int(event.get("iteration", 0))
        used, delta = self._budget
        scores = event.get("scores_by_val_id") or {}
        if iteration == 0:  # the seed: GEPA counts its evaluation before its budget hook exists
            self._total = max(self._total, int(event.get("num_examples_evaluated") or len(scores)))
        self._candidate(int(event["candidate_idx"]), event.get("candidate") or {}, event.get("parent_ids") or [],
                        scores, 0 if iteration == 0 else used - delta, iteration)
        if event.get("is_best_program"):
            self.best_idx = int(event["candidate_idx"])

    @_event
    def on_budget_updated(self, event: Any) -> None:
        self._budget = (int(event.get("metric_calls_used", 0)), int(event.get("metric_calls_delta", 0)))
        self._total = self._budget[0]
        if self._after_train:  # the train minibatch just evaluated; the next one is a validation run's
            self.roles["student_train"]["metric_calls"] += self._budget[1]
            self._after_train = False

    @_event
    def on_pareto_front_updated(self, event: Any) -> None:
        self.pareto_front = [int(i) for i in event.get("new_front") or []]

    @_event
    def on_candidate_selected(self, event: Any) -> None:
        self._new_proposal("reflection", int(event.get("iteration", 0)), [int(event["candidate_idx"])])

    @_event
    def on_minibatch_sampled(self, event: Any) -> None:
        p = self._first(lambda p: p["kind"] == "reflection" and not p["minibatch_ids"])
        if p is not None:
            p["minibatch_ids"] = [json_id(i) for i in event.get("minibatch_ids") or []]

    @_event
    def on_evaluation_start(self, event: Any) -> None:
        self._train_window = bool(event.get("capture_traces"))
        self._student_role = "student_train" if self._train_window else "student_val"
        idx, parents = event.get("candidate_idx"), [int(p) for p in event.get("parent_ids") or []]
        inputs = list(event.get("inputs") or [])
        if self._train_window and idx is not None:  # a parent on its minibatch: keep the gold labels
            p = self._first(lambda p: p["parents"] == [idx] and not p["_gold"])
            if p is not None:
                p["_gold"] = {example_text(ex): example_gold(ex) for ex in inputs}
        elif not self._train_window and idx is None and len(parents) > 1:
            self._new_proposal("merge", int(event.get("iteration", 0)), parents,
                               **merge_minibatch(self._valset, self.candidates, self.val_ids, inputs, parents))

    @_event
    def on_evaluation_end(self, event: Any) -> None:
        scores = [score_value(s) for s in event.get("scores") or []]
        idx, parents = event.get("candidate_idx"), [int(p) for p in event.get("parent_ids") or []]
        if self._train_window:
            self._after_train = True
            if idx is not None:
                p = self._first(lambda p: p["kind"] == "reflection" and p["parents"] == [idx]
                                and p["parent_scores"] is None)
                if p is not None:
                    p["parent_scores"] = scores
            else:
                p = self._first(lambda p: p["kind"] == "reflection" and p["instructions"] is not None
                                and p["new_scores"] is None)
                if p is not None:
                    p["new_scores"] = scores
        elif idx is None and len(parents) > 1:
            p = self._first(lambda p: p["kind"] == "merge" and p["new_scores"] is None)
            if p is not None:
                p["new_scores"] = scores
        self._student_role, self._train_window = "student_val", False

    @_event
    def on_evaluation_skipped(self, event: Any) -> None:
        idx = event.get("candidate_idx")
        p = self._first(lambda p: p["kind"] == "reflection" and p["parents"] == [idx] and not p["_started"])
        if p is not None:
            self._pending.remove(p)

    @_event
    def on_reflective_dataset_built(self, event: Any) -> None:
        idx = event.get("candidate_idx")
        p = self._first(lambda p: p["kind"] == "reflection" and p["parents"] == [idx] and not p["_started"]
                        and not p["feedback"])
        if p is not None:
            p["feedback"] = feedback_rows(event.get("dataset") or {}, p["_gold"])

    @_event
    def on_proposal_start(self, event: Any) -> None:
        p = self._first(lambda p: p["kind"] == "reflection" and not p["_started"])
        if p is not None:
            p["_started"] = True
            if not p["feedback"]:
                p["feedback"] = feedback_rows(event.get("reflective_dataset") or {}, p["_gold"])
        self._reflecting = True

    @_event
    def on_proposal_end(self, event: Any) -> None:
        p = self._first(lambda p: p["kind"] == "reflection" and p["_started"] and p["instructions"] is None)
        if p is not None:
            p["instructions"] = {str(k): trim(v, INSTRUCTION_CAP)
                                 for k, v in (event.get("new_instructions") or {}).items()}

    @_event
    def on_candidate_rejected(self, event: Any) -> None:
        self._decide(self._first(lambda p: p["kind"] == "reflection" and p["new_scores"] is not None
                                 and p["accepted"] is None), False, str(event.get("reason") or ""))

    @_event
    def on_candidate_accepted(self, event: Any) -> None:
        self._decide(self._first(lambda p: p["kind"] == "reflection" and p["new_scores"] is not None
                                 and p["accepted"] is None), True, new_idx=int(event["new_candidate_idx"]))

    @_event
    def on_merge_attempted(self, event: Any) -> None:
        p = self._first(lambda p: p["kind"] == "merge" and p["instructions"] is None)
        if p is not None:
            p["instructions"] = {str(k): trim(v, INSTRUCTION_CAP)
                                 for k, v in (event.get("merged_candidate") or {}).items()}

    @_event
    def on_merge_accepted(self, event: Any) -> None:
        self._decide(self._first(lambda p: p["kind"] == "merge" and p["accepted"] is None), True,
                     new_idx=int(event["new_candidate_idx"]))

    @_event
    def on_merge_rejected(self, event: Any) -> None:
        self._decide(self._first(lambda p: p["kind"] == "merge" and p["accepted"] is None), False,
                     str(event.get("reason") or ""))

    @_event
    def on_error(self, event: Any) -> None:
        exc = event.get("exception")
        self._close_iteration(f"the iteration failed ({type(exc).__name__})" if exc is not None else "")

    @_event
    def on_iteration_end(self, event: Any) -> None:
        self._close_iteration()
        self._reconcile(event.get("state"))
        self.save()

    @_event
    def on_optimization_end(self, event: Any) -> None:
        self._close_iteration()
        self._reconcile(event.get("final_state"))
        self.save()
