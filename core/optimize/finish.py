"""The before/after test evaluations of an optimization: the last step of a finished run, and, one click later,
of a stopped one (capped, cancelled, or stopped by the circuit breaker), which keeps its best program.

:func:`evaluate_pair` is shared by ``run_optimization`` and :func:`finish_optimization` (the ``finish`` job):
both programs on the identical test examples as child runs, the paired metrics and tags, the prompt registered.
A finished stopped run keeps its status and ``stop_reason``; only its results are added.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, TypedDict

import dspy
import pandas as pd

from core.config.errors import ConfigError, StoreError, StudioError
from core.config.settings import PLAN_FILE, Settings
from core.evaluation.baseline import EvalRun, run_evaluation
from core.evaluation.evaluate import EvalOptions, EvalRecord, EvalResult
from core.lm.breaker import BreakerSettings
from core.lm.models import ModelSpec, resolve_price
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import STUDENT_OUTPUT_TOKENS
from core.optimize.registered import MadeBy, register_prompt
from core.optimize.registered import prompt_name as prompt_name  # re-exported (core.optimize)
from core.program.program import fingerprint, program_from_dict
from core.tasks import Splits, Task, prepare, split_fingerprint
from core.tracking.store import TAG, RunStore, run_status

logger = logging.getLogger(__name__)

PROGRAM_ARTIFACTS = ("config.json", "original_program.json", "optimized_program.json")
RESULT_METRICS = ("original_test_accuracy", "optimized_test_accuracy")
FALLBACK_INPUT_TOKENS = 250  # a short classification prompt, when the run measured no student call
PROGRESS_EVERY_S = 0.25  # at most this often a finish job rewrites its progress (a failure or the end: at once)
SUPERSEDED_TAG = f"{TAG}superseded_by"  # an earlier test evaluation replaced by a resumed run's (then deleted)


@dataclass(frozen=True)
class PairedResult:
    """Both programs scored on the same test examples."""

    original_eval_run_id: str
    optimized_eval_run_id: str
    original: EvalResult
    optimized: EvalResult
    prompt_uri: str | None

    @property
    def original_accuracy(self) -> float:
        return float(self.original.metrics["accuracy"])

    @property
    def optimized_accuracy(self) -> float:
        return float(self.optimized.metrics["accuracy"])


OnRecord = Callable[[str, int, int, EvalRecord], None]  # (program label, done, total, record)


@dataclass(frozen=True)
class PairOptions:
    """How a paired test evaluation runs besides what it evaluates: the job tagged on both runs (and the one the
    registered prompt names, ``prompt_job_id``, by default the same), the student's LM (tests), the per-record hook
    and the cancel channel."""

    job_id: str | None = None
    prompt_job_id: str | None = None
    lm: Any = None
    on_record: OnRecord | None = None
    should_stop: Callable[[], bool] | None = None


def evaluate_pair(store: RunStore, config: OptimizeConfig, task: Task, test: pd.DataFrame,
                  programs: tuple[dspy.Module, dspy.Module], *, run_id: str,
                  options: PairOptions = PairOptions()) -> PairedResult | None:
    """Evaluate the original and the optimized program on ``test`` as child runs of ``run_id``; log
    ``original_test_accuracy`` / ``optimized_test_accuracy`` and the costs per 1k, link both runs by tag and
    register the optimized instruction. None when ``options.should_stop`` stopped it first (nothing is logged on the
    parent then); a dead provider raises (its child run ends FAILED). An earlier attempt's evaluation of the same
    program on the same examples (a kill or Ctrl-C during it) is gone on with, and any other earlier one of that
    program is superseded (:func:`supersede`): a resumed run shows one evaluation per program."""
    job_id, on_record, should_stop = options.job_id, options.on_record, options.should_stop
    run = EvalRun(kind="evaluation", module=config.module, sample=config.sample, task_ref=config.task_ref,
                  parent_run_id=run_id, job_id=job_id,
                  # the starting program (bare, described, own) and the optimizer that made the pair
                  extra_tags={f"{TAG}start": config.start, f"{TAG}optimizer": config.optimizer,
                              **({f"{TAG}sweep": config.sweep} if config.sweep else {})})
    eval_options = EvalOptions(threads=config.threads, cache=config.cache, lm=options.lm, should_stop=should_stop,
                               judge=config.reflection if task.metric == "judge" else None)
    results = []
    earlier = earlier_evaluations(store, run_id)
    for label, program in zip(("original", "optimized"), programs, strict=True):
        if should_stop and should_stop():
            return None
        cb = (lambda done, total, rec, _label=label: on_record(_label, done, total, rec)) if on_record else None
        reuse = reusable_evaluation(store, earlier.get(label, []), program, test, task)
        if reuse and job_id:  # the job that goes on with it lists it as its own
            store.set_tags(reuse, {f"{TAG}job_id": job_id})
        eval_id, res = run_evaluation(store, task, config.student, program, test,
                                      replace(run, program_label=label, resume_run_id=reuse),
                                      replace(eval_options, on_record=cb))
        supersede(store, earlier.get(label, []), eval_id)
        if not res.metrics.get("complete"):
            return None
        results.append((eval_id, res))
    (orig_id, orig), (opt_id, opt) = results
    store.log_metrics(run_id, {"original_test_accuracy": orig.metrics["accuracy"],
                               "optimized_test_accuracy": opt.metrics["accuracy"],
                               # the mean score (= accuracy for classification), with its metric named by the
                               # run's tag studio.metric
                               "original_test_score": orig.metrics["score"],
                               "optimized_test_score": opt.metrics["score"],
                               "original_cost_per_1k": orig.metrics["cost_per_1k"],
                               "optimized_cost_per_1k": opt.metrics["cost_per_1k"]})
    store.set_tags(run_id, {f"{TAG}original_eval_run_id": orig_id, f"{TAG}optimized_eval_run_id": opt_id,
                            f"{TAG}optimized_fingerprint": fingerprint(programs[1])})
    # The whole optimized program (instruction and demos), as it was just measured.
    uri = register_prompt(store, task, config.student, programs[1], opt.metrics["score"],
                          MadeBy(run_id, options.prompt_job_id or job_id, config.label))
    return PairedResult(orig_id, opt_id, orig, opt, uri)


def earlier_evaluations(store: RunStore, run_id: str) -> dict[str, list[Any]]:
    """The test evaluations earlier attempts left under optimization ``run_id``, newest first, by program label."""
    found: dict[str, list[Any]] = {}
    for run in store.search(f"tags.`mlflow.parentRunId` = '{run_id}'"):
        if run.data.tags.get(f"{TAG}kind") == "evaluation":
            found.setdefault(run.data.tags.get(f"{TAG}program", ""), []).append(run)
    return found


def reusable_evaluation(store: RunStore, runs: list[Any], program: dspy.Module, test: pd.DataFrame,
                        task: Task) -> str | None:
    """The newest earlier evaluation of this very program on these very examples whose process is gone
    (interrupted, stopped, failed or finished): going on with it keeps its records and sends only what is missing.
    None when there is none."""
    want = (fingerprint(program), split_fingerprint(test, task))
    for run in runs:
        params = run.data.params
        if ((params.get("program_fingerprint"), params.get("test_fingerprint")) == want
                and run_status(run.info.status, run.data.tags) != "RUNNING"
                and (store.settings.data_dir / "runs" / run.info.run_id / "records.jsonl").exists()):
            return run.info.run_id
    return None


def supersede(store: RunStore, runs: list[Any], kept: str) -> list[str]:
    """Earlier evaluations of a program that ``kept`` replaces: tagged ``studio.superseded_by`` and deleted (MLflow
    keeps a deleted run restorable; run tables list active runs only). One still running elsewhere is left alone."""
    gone = []
    for run in runs:
        rid = run.info.run_id
        if rid == kept or run_status(run.info.status, run.data.tags) == "RUNNING":
            continue
        store.set_tags(rid, {SUPERSEDED_TAG: kept})
        if run.info.status == "RUNNING":  # its process is gone
            store.end_run(rid, "KILLED")
        store.client.delete_run(rid)
        gone.append(rid)
    if gone:
        logger.info("evaluation %s supersedes %s", kept, ", ".join(gone))
    return gone


def evaluation_reasons(settings: BreakerSettings, pair: PairedResult) -> list[str]:
    """Why the paired numbers are less trustworthy: a test evaluation with too many failed examples."""
    reasons = []
    for label, res in (("original", pair.original), ("optimized", pair.optimized)):
        failed, n = int(res.metrics.get("failed") or 0), int(res.metrics.get("n") or 0)
        if settings.degraded(failed, n):
            reasons.append(f"the {label} program's test evaluation failed on {failed} of {n} examples")
    return reasons


# Finishing a stopped optimization -----------------------------------------------------------


@dataclass(frozen=True)
class FinishPlan:
    """A stopped optimization and what finishing it runs: its config, programs' task and the planned test split."""

    run_id: str
    config: OptimizeConfig
    task: Task
    splits: Splits
    job_id: str | None  # the optimization's own job
    cost_usd: float | None  # estimated cost of both test evaluations

    @property
    def title(self) -> str:
        return f"Test evaluation of {self.config.title(self.task.name)}"


def check_finishable(store: RunStore, run_id: str) -> Any:
    """The MLflow run of a stopped optimization that can be finished; StudioError (with a hint) otherwise:
    not an optimization, still running, already has results, or lacks its program artifacts."""
    try:
        run = store.get_run(run_id)
    except StoreError as exc:
        raise StoreError(exc.message,
                         "List optimization runs with `python -m core jobs` or on the History page.") from exc
    tags, metrics = run.data.tags, run.data.metrics
    if tags.get(f"{TAG}kind") != "optimization":
        raise ConfigError(f"Run {run_id} is a {tags.get(f'{TAG}kind') or 'non-studio'} run, not an optimization.",
                          "Give the id of a GEPA optimization run.")
    if run_status(run.info.status, tags) == "RUNNING":
        raise ConfigError(f"Optimization {run_id} is still running.",
                          "Wait for it to end (it evaluates on the test set itself), or cancel it first.")
    if tags.get(f"{TAG}stopped_by") == "no_proposal":
        raise ConfigError(f"Optimization {run_id} made no proposal: its program is the starting one, so there is "
                          "nothing new to evaluate.", "Read why on its job or run page, change the student, and "
                          "start a new optimization.")
    if all(m in metrics for m in RESULT_METRICS):
        raise ConfigError(f"Optimization {run_id} already has its test results "
                          f"({metrics['original_test_accuracy']:.1%} → {metrics['optimized_test_accuracy']:.1%}).",
                          "See them on the Compare page.")
    missing = [a for a in PROGRAM_ARTIFACTS if a not in set(store.list_artifacts(run_id))]
    if missing:
        raise ConfigError(f"Optimization {run_id} has no saved best program ({', '.join(missing)} missing): it "
                          "stopped before GEPA's first result was kept.",
                          "Resume its job (Optimize page or `python -m core jobs resume JOB_ID`), or start a new one.")
    return run


def _planned(settings: Settings, job_id: str | None) -> tuple[Task, Splits] | None:
    if not job_id:
        return None
    try:
        plan = json.loads((settings.jobs_dir / job_id / PLAN_FILE).read_text(encoding="utf-8"))
        return Task.from_dict(plan["task"]), Splits.from_dict(plan["splits"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def plan_finish(store: RunStore, run_id: str, prepared: tuple[Task, Splits] | None = None) -> FinishPlan:
    """Check the run can be finished and find its test split: ``prepared``, else its job's stored plan, else
    re-planned from its config; the test examples must be those the optimization planned (their fingerprint)."""
    run = check_finishable(store, run_id)
    config = OptimizeConfig.from_dict(store.read_json(run_id, "config.json"))
    job_id = run.data.tags.get(f"{TAG}job_id") or None
    task, splits = (prepared or _planned(store.settings, job_id)
                    or prepare(config.task_ref, config.sample, store.settings))
    planned = run.data.params.get("test_fingerprint")
    now = split_fingerprint(splits.test, task)
    if planned and planned != now:
        raise ConfigError(f"The test examples of task {task.name} are no longer those optimization {run_id} "
                          f"planned (fingerprint {now}, planned {planned}): its data file changed.",
                          "Restore the task's file as it was, or start a new optimization.")
    progress = _read_progress(store, run_id)
    return FinishPlan(run_id, config, task, splits, job_id,
                      estimate_finish(config.to_dict(), len(splits.test), progress))


def _read_progress(store: RunStore, run_id: str) -> dict[str, Any]:
    try:
        return dict(store.read_json(run_id, "progress.json"))
    except (StudioError, ValueError, TypeError):
        return {}


def estimate_finish(config: Mapping[str, Any], n_test: int, progress: Mapping[str, Any] | None = None) -> float | None:
    """Estimated cost (USD) of the test evaluations of both programs on ``n_test`` examples: the student's
    measured cost per call during the optimization when known, else its price and a typical prompt size.
    None when the student's price is unknown."""
    p = progress or {}
    calls, spent = int(p.get("student_calls") or 0), float(p.get("student_cost_usd") or 0.0)
    if calls > 0 and spent > 0:
        return 2 * n_test * spent / calls
    student = ModelSpec.from_dict(dict(config["student"]))
    out = STUDENT_OUTPUT_TOKENS.get(str(config.get("module", "predict")), STUDENT_OUTPUT_TOKENS["predict"])
    return resolve_price(student).cost(2 * n_test * FALLBACK_INPUT_TOKENS, 2 * n_test * out)


FinishStatus = Literal["succeeded", "cancelled", "failed"]


class FinishProgress(TypedDict, total=False):
    """What a finish job reports (its progress.json)."""

    phase: str  # evaluating | done | stopped | failed
    message: str
    error: str
    programs: dict[str, dict[str, Any]]  # "original" / "optimized" -> done, total, failed, failed_by_kind, retried
    original_test_accuracy: float
    optimized_test_accuracy: float


@dataclass(frozen=True)
class FinishResult:
    run_id: str
    status: FinishStatus
    pair: PairedResult | None = None
    error: str | None = None  # when failed: the provider's error (its circuit breaker's message)
    degraded_reason: str | None = None


def finish_optimization(store: RunStore, plan: FinishPlan, *, job_id: str | None = None,
                        progress: Callable[[FinishProgress], None] | None = None,
                        should_stop: Callable[[], bool] | None = None, lm_factory: Any = None) -> FinishResult:
    """Evaluate a stopped optimization's original and best program on its planned test split, as a finished
    optimization does; the run keeps its status and stop reason. Cancel through ``should_stop``."""
    check_finishable(store, plan.run_id)  # it may have changed since it was planned
    config, run_id = plan.config, plan.run_id
    programs = (program_from_dict(store.read_json(run_id, "original_program.json"))[0],
                program_from_dict(store.read_json(run_id, "optimized_program.json"))[0])
    n = len(plan.splits.test)
    state: FinishProgress = {"phase": "evaluating", "message": "Evaluating original and optimized on the test set",
                             "programs": {label: {"done": 0, "total": n, "failed": 0, "retried": 0}
                                          for label in ("original", "optimized")}}
    last = [0.0]

    def sink(force: bool = True, **changes: Any) -> None:
        if progress and (force or time.time() - last[0] > PROGRESS_EVERY_S):
            last[0] = time.time()
            progress(json.loads(json.dumps({**state, **changes})))  # a copy: the page reads it while it changes

    sink()

    def on_record(label: str, done: int, total: int, rec: EvalRecord) -> None:
        p = state["programs"][label]
        p.update(done=done, total=total)
        p["retried"] += max(0, int(rec.attempts or 1) - 1)  # provider errors a retry got past
        if rec.outcome == "failed":
            p["failed"] += 1
            by_kind = p.setdefault("failed_by_kind", {})
            by_kind[rec.error_kind or "other"] = by_kind.get(rec.error_kind or "other", 0) + 1
        sink(force=done == total or rec.outcome == "failed")

    lm = lm_factory(config.student) if lm_factory else None
    try:
        pair = evaluate_pair(store, config, plan.task, plan.splits.test, programs, run_id=run_id,
                             options=PairOptions(job_id=job_id, prompt_job_id=plan.job_id, lm=lm, on_record=on_record,
                                                 should_stop=should_stop))
    except StudioError as exc:  # the student's provider is gone: its circuit breaker stopped the evaluation
        sink(phase="failed", message=str(exc)[:2000], error=str(exc)[:2000])
        return FinishResult(run_id, "failed", error=str(exc))
    if pair is None:
        sink(phase="stopped", message="cancelled")
        return FinishResult(run_id, "cancelled")
    reasons = evaluation_reasons(BreakerSettings.from_env(), pair)
    degraded = None
    if reasons:
        earlier = store.get_run(run_id).data.tags.get(f"{TAG}degraded_reason")
        degraded = "; ".join([*([earlier] if earlier else []), *reasons])
        store.set_tags(run_id, {f"{TAG}degraded": "true", f"{TAG}degraded_reason": degraded[:5000]})
    sink(phase="done", message="Finished", original_test_accuracy=pair.original_accuracy,
         optimized_test_accuracy=pair.optimized_accuracy)
    return FinishResult(run_id, "succeeded", pair, degraded_reason=degraded)
