"""One GEPA run in the calling process: progress, cost cap, cancel, resume, a circuit breaker per model;
every result lands in MLflow. Also what every optimizer's run shares: the MLflow run it opens (or goes on with)
and how a run that a dead provider stopped ends.

``core.optimize.optimizers.run_optimization`` picks the optimizer; ``core.jobs`` runs it as a background job (the
``optimize`` job kind); the CLI runs it in the foreground.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import dspy

from core.config.errors import ProviderError, StudioError
from core.evaluation.baseline import spec_params
from core.lm.breaker import HINTS, BreakerSettings
from core.lm.models import ModelSpec, build_lm, resolve_price
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import Plan, metric_call_budget
from core.optimize.finish import PairedResult, evaluate_pair, evaluation_reasons
from core.optimize.guard import CallGuard, ProposalCounter, guard_lm
from core.optimize.lifecycle import INTERRUPTED, SearchWatch, ends_interrupted, mark_interrupted
from core.optimize.lifecycle import close_orphan_evaluations as close_orphan_evaluations  # re-exported
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressSink
from core.optimize.search import SearchRecorder
from core.program.metric import make_metric
from core.program.program import get_instruction, make_program, program_to_dict, to_examples
from core.tasks import Splits, Task, split_fingerprint
from core.tracking import tracing
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)


@dataclass
class OptimizeResult:
    run_id: str
    status: Literal["succeeded", "cancelled", "failed"]
    stop_reason: str
    best_instruction: str
    original_instruction: str
    original_eval_run_id: str | None = None
    optimized_eval_run_id: str | None = None
    original_accuracy: float | None = None
    optimized_accuracy: float | None = None
    progress: OptimizeProgress = field(default_factory=dict)  # type: ignore[assignment]
    prompt_uri: str | None = None
    error: str | None = None  # when failed: the message (a stopping circuit breaker names the provider's error)
    degraded_reason: str | None = None  # set when faults make the numbers less trustworthy (tag studio.degraded)


LMFactory = Callable[[ModelSpec], Any]


def _config_params(config: OptimizeConfig, task: Task, splits: Splits) -> dict[str, Any]:
    return {
        **{f"student_{k}": v for k, v in spec_params(config.student).items()},
        **({f"reflection_{k}": v for k, v in spec_params(config.reflection).items()} if config.reflection else {}),
        "task": task.name, "task_source": config.task_ref.source or config.task_ref.kind,
        **{f"sample_{k}": v for k, v in config.sample.to_dict().items()},
        "n_train": len(splits.train), "n_val": len(splits.val) if splits.val is not None else 0, "n_test": len(splits.test),
        "optimizer": config.optimizer, "budget": config.budget_label(), "max_cost_usd": config.max_cost_usd, "module": config.module,
        "start": config.start,
        "reflection_minibatch_size": config.reflection_minibatch_size, "use_merge": config.use_merge,
        "threads": config.threads, "seed": config.seed, "feedback": config.feedback,
        "test_fingerprint": split_fingerprint(splits.test, task),
    }


def cap_text(usd: float) -> str:
    """A spending cap as people typed it: $0.05, $2.00, $0.002."""
    return f"${usd:.2f}" if usd >= 0.01 and round(usd, 2) == usd else f"${usd:.4g}"


FAULT_TAGS = ("error", "stopped_by", "degraded", "degraded_reason", "stop_reason", "state")


class _QuietTracebacks(logging.Filter):
    """GEPA logs the traceback of every failed reflection call: for a provider's or a parse error, the counts
    and the breaker's message say it; other tracebacks (bugs) are kept."""

    OURS = ("dspy.utils.exceptions.", "core.lm.breaker.", "core.config.errors.")

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if not text.startswith("Traceback (most recent call last)"):
            return True
        return not any(line.startswith(self.OURS) for line in text.splitlines())  # the exception lines


def degraded_reasons(guards: tuple[CallGuard, CallGuard], proposals: ProposalCounter | None,
                     settings: BreakerSettings, pair: PairedResult) -> list[str]:
    """Why a finished run's numbers are less trustworthy: failed proposals, failed calls, failed test examples."""
    reasons = []
    if proposals is not None and settings.degraded(proposals.failed, proposals.started):
        reasons.append(f"{proposals.failed} of {proposals.started} reflection proposals gave no usable instruction")
    for g in guards:
        if settings.degraded(g.failed, g.calls):
            reasons.append(f"{g.failed} of {g.calls} {g.role} calls failed")
    return reasons + evaluation_reasons(settings, pair)


def open_run(store: RunStore, config: OptimizeConfig, task: Task, splits: Splits, *, job_id: str | None,
             run_id: str | None, on_run_created: Callable[[str], None] | None) -> str:
    """Start the optimization's MLflow run (named "<Optimizer> · <student> ← <model>", tagged with the optimizer as
    ``studio.program``), or, on a resume, clear the earlier attempt's fault tags and mark it RUNNING again."""
    if run_id is None:
        other = config.reflection if config.optimizer != "own" else None
        name = f"{config.label} · {config.student.name}" + (f" ← {other.name}" if other else "")
        run_id = store.start_run("optimization", task.name, run_name=name, params=_config_params(config, task, splits),
                                 tags={f"{TAG}model": config.student.name, f"{TAG}program": config.optimizer,
                                       f"{TAG}start": config.start, f"{TAG}repeat_key": config.repeat_key(),
                                       **({f"{TAG}reflection_model": other.name} if other else {}),
                                       **({f"{TAG}job_id": job_id} if job_id else {}),
                                       **({f"{TAG}sweep": config.sweep} if config.sweep else {})})
        store.log_artifacts(run_id, {"config.json": config.to_dict()})
        tracing.log_datasets(store, run_id, {"train": splits.train, "val": splits.val, "test": splits.test}, task)
    else:  # a resume: its config and datasets were logged by the first attempt
        close_orphan_evaluations(store, run_id)
        for key in FAULT_TAGS:  # an earlier attempt's failure is not this one's
            try:
                store.client.delete_tag(run_id, f"{TAG}{key}")
            except Exception:  # noqa: BLE001 - the tag was not there
                pass
        store.client.update_run(run_id, status="RUNNING")
    if on_run_created:
        on_run_created(run_id)
    return run_id


@ends_interrupted
def run_gepa(
    config: OptimizeConfig,
    store: RunStore,
    *,
    log_dir: Path,
    plan: Plan,
    job_id: str | None = None,
    run_id: str | None = None,
    progress: ProgressSink | None = None,
    previous: OptimizeProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    lm_factory: LMFactory | None = None,
    on_run_created: Callable[[str], None] | None = None,
    extra_callbacks: list[Any] | None = None,
) -> OptimizeResult:
    """Run GEPA, save the best program, evaluate original and optimized on the same test examples.

    ``log_dir`` is GEPA's run directory: a second call with the same ``log_dir`` (and ``run_id``)
    resumes from the last completed iteration. ``previous`` is the progress of earlier attempts;
    ``should_stop`` is the one cancel channel (checked between GEPA iterations).
    A dead student or reflection provider trips a circuit breaker: GEPA stops, the best program so far is
    kept, and the result is ``failed`` with the breaker's message (the MLflow run ends FAILED).
    """
    sink = progress or (lambda p: None)
    task, splits = plan.task, plan.splits
    assert config.reflection is not None
    prev = previous or {}
    limits = BreakerSettings.from_env()
    guards = (CallGuard("student", config.student, limits, int(prev.get("student_calls", 0)),
                        int(prev.get("failed_student_calls", 0))),
              CallGuard("reflection", config.reflection, limits, int(prev.get("reflection_calls", 0)),
                        int(prev.get("failed_reflection_calls", 0))))
    proposals = ProposalCounter(int(prev.get("proposals", 0)), int(prev.get("failed_proposals", 0)))
    make_lm = lm_factory or (lambda spec: build_lm(spec, cache=config.cache))
    student_lm = guard_lm(make_lm(config.student), guards[0])
    reflection_lm = guard_lm(make_lm(config.reflection), guards[1])
    train, test = to_examples(splits.train, task), splits.test
    val = to_examples(splits.val, task) if splits.val is not None and len(splits.val) else None
    budget = metric_call_budget(config, len(train), len(val or []))

    run_id = open_run(store, config, task, splits, job_id=job_id, run_id=run_id, on_run_created=on_run_created)

    meters = (CostMeter(student_lm, resolve_price(config.student), float(prev.get("student_cost_usd", 0.0))),
              CostMeter(reflection_lm, resolve_price(config.reflection), float(prev.get("reflection_cost_usd", 0.0))))
    callback = ProgressCallback(sink, budget, *meters, previous=prev, store=store, run_id=run_id, guards=guards,
                                proposals=proposals)
    recorder = SearchRecorder(meters, log_dir, valset=val if val is not None else train)  # GEPA's valset
    student_lm, reflection_lm = tracing.trace_optimization(store, run_id, task, train, val, (student_lm, reflection_lm),
                                                           (config.student, config.reflection), roles=recorder)
    log_dir.mkdir(parents=True, exist_ok=True)
    stop: dict[str, Any] = {"why": "", "failure": None}

    def stopper(_state: Any = None) -> bool:
        if should_stop and should_stop():
            stop["why"] = "cancelled"
            return True
        for guard in guards:
            if guard.tripped:
                stop["why"], stop["failure"] = "circuit breaker", guard.error()
                return True
        if proposals.in_a_row >= limits.consecutive:
            r = guards[1].breaker
            stop["why"], stop["failure"] = "circuit breaker", ProviderError(
                f"reflection model {config.reflection.name}: stopped after {proposals.in_a_row} proposals in a row "  # type: ignore[union-attr]
                f"gave no usable instruction (last error: {r.last_kind or 'parse'}: {r.last_error or 'no instruction in its answer'}).",
                "Use a strong instruction-following model for reflection; the job's log shows its answers.",
                r.last_kind or "parse")
            return True
        if config.max_cost_usd is not None and callback.total_cost() >= config.max_cost_usd:
            stop["why"] = f"spending cap {cap_text(config.max_cost_usd)} reached"
            return True
        return False

    metric = make_metric(task, config.feedback, judge_lm=reflection_lm if config.feedback == "judge" else None)
    program = make_program(task, config.module, config.instruction or None, start=config.start)
    original_instruction = get_instruction(program)
    budget_kw: dict[str, Any] = {"max_metric_calls": budget}
    watch = SearchWatch()  # a search that could not propose (no trajectories) says so
    gepa = dspy.GEPA(
        metric=metric, reflection_lm=reflection_lm, reflection_minibatch_size=config.reflection_minibatch_size,
        use_merge=config.use_merge, num_threads=config.threads, seed=config.seed, log_dir=str(log_dir),
        track_stats=True, **budget_kw,
        gepa_kwargs={"callbacks": [callback, recorder, watch, *(extra_callbacks or [])], "stop_callbacks": [stopper]},
    )
    gepa_logger, quiet = logging.getLogger("dspy.teleprompt.gepa.gepa"), _QuietTracebacks()
    gepa_logger.addFilter(quiet)
    try:
        with dspy.context(lm=student_lm, callbacks=[*dspy.settings.get("callbacks", []), watch.parses]):
            optimized = gepa.compile(program, trainset=train, valset=val)
    except BaseException as exc:
        ctrl_c = isinstance(exc, KeyboardInterrupt)  # interrupted, not failed: a resume goes on from GEPA's state
        message = INTERRUPTED if ctrl_c else str(exc)[:2000]
        callback.emit(force=True, phase="interrupted" if ctrl_c else "failed", message=message,
                      **({} if ctrl_c else {"error": message}))
        callback.log_spend()  # a failed run shows what it spent
        if not ctrl_c:
            store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
        try:
            store.log_artifacts(run_id, {"search.json": recorder.record()})
            store.log_metrics(run_id, recorder.error_metrics())
        except Exception as log_exc:  # noqa: BLE001 - the run's own failure is what it must report
            logger.warning("could not log search.json: %s", log_exc)
        if ctrl_c:
            mark_interrupted(store, run_id)
        else:
            store.end_run(run_id, "FAILED")
        raise
    finally:
        gepa_logger.removeFilter(quiet)
        tracing.flush()  # a stopped or failed run shows its traces too
        callback.log_spend()  # and its spend, whatever ended it (an interrupt included)

    failure: StudioError | None = stop["failure"]
    if failure is None and not stop["why"]:  # the budget ran out: did GEPA propose anything at all?
        failure = watch.no_proposal(proposals.started, guards[1].calls)
    if failure is None and proposals.started and proposals.succeeded <= 0:
        r = guards[1].breaker
        failure = ProviderError(
            f"reflection model {config.reflection.name}: none of its {proposals.started} proposals gave a usable "
            f"instruction (last error: {r.last_kind or 'parse'}: {r.last_error or 'no instruction in its answer'}).",
            HINTS.get(r.last_kind or "", "Use a strong instruction-following model for reflection."), r.last_kind or "parse")
    stopped = bool(stop["why"]) and failure is None
    details = getattr(optimized, "detailed_results", None)
    best_instruction = get_instruction(optimized)
    callback.emit(force=True, phase="stopped" if stopped or failure else "evaluating",
                  message=stop["why"] or "Evaluating original and optimized on the test set")
    files: dict[str, Any] = {
        "optimized_program.json": program_to_dict(optimized, task),
        "original_program.json": program_to_dict(program, task),
        "instructions.json": {"original": original_instruction, "optimized": best_instruction},
        "progress.json": callback.state,
        "search.json": recorder.record(),
    }
    if details is not None:
        try:
            files["detailed_results.json"] = details.to_dict()
        except Exception as exc:  # noqa: BLE001
            logger.warning("detailed_results not serializable: %s", exc)
    store.log_artifacts(run_id, files)
    state = callback.state
    cost_metrics = {
        "optimization_cost_usd": state["total_cost_usd"], "student_cost_usd": state["student_cost_usd"],
        "reflection_cost_usd": state["reflection_cost_usd"], "metric_calls_used": state["metric_calls_used"],
        "candidates": float(len(details.candidates)) if details is not None else float(state["candidates"]),
        "best_val_score": float(max(details.val_aggregate_scores)) if details is not None else float(state["best_val_score"] or 0),
        "iterations": state["iteration"], "elapsed_s": state["elapsed_s"],
        "student_input_tokens": meters[0].input_tokens, "student_output_tokens": meters[0].output_tokens,
        "reflection_input_tokens": meters[1].input_tokens, "reflection_output_tokens": meters[1].output_tokens,
        **callback.spend_metrics(), **callback.fault_metrics(), **recorder.error_metrics(),
    }
    if details is not None and getattr(details, "total_metric_calls", None) is not None:
        cost_metrics["total_metric_calls"] = float(details.total_metric_calls)
    store.log_metrics(run_id, cost_metrics, step=callback.step())
    result = OptimizeResult(run_id=run_id, status="cancelled" if stopped else "succeeded", stop_reason=stop["why"],
                            best_instruction=best_instruction, original_instruction=original_instruction)
    if failure is not None:
        return fail_run(store, result, callback, failure)
    if stopped:
        store.set_tags(run_id, {f"{TAG}stop_reason": stop["why"]})
        store.end_run(run_id, "KILLED")
        result.progress = callback.state
        return result

    # Paired comparison: both programs on the identical test examples, as child runs.
    try:
        pair = evaluate_pair(store, config, task, test, (program, optimized), run_id=run_id, job_id=job_id,
                             lm=student_lm if lm_factory else None)
    except StudioError as exc:  # the student died during the test evaluation (its breaker stopped it)
        return fail_run(store, result, callback, exc)
    assert pair is not None  # nothing stops it but a dead provider
    result.original_eval_run_id, result.optimized_eval_run_id = pair.original_eval_run_id, pair.optimized_eval_run_id
    result.original_accuracy, result.optimized_accuracy = pair.original_accuracy, pair.optimized_accuracy
    result.prompt_uri = pair.prompt_uri
    store.log_metrics(run_id, callback.fault_metrics(), step=callback.step())
    reasons = degraded_reasons(guards, proposals, limits, pair)
    if reasons:
        result.degraded_reason = "; ".join(reasons)
        store.set_tags(run_id, {f"{TAG}degraded": "true", f"{TAG}degraded_reason": result.degraded_reason[:5000]})
    callback.emit(force=True, phase="done", message="Finished", degraded=bool(reasons),
                  **({"degraded_reason": result.degraded_reason} if reasons else {}))
    store.log_artifacts(run_id, {"progress.json": callback.state})
    store.end_run(run_id, "FINISHED")
    result.progress = callback.state
    return result


def fail_run(store: RunStore, result: OptimizeResult, callback: ProgressCallback, error: StudioError) -> OptimizeResult:
    """End a run that a dead provider stopped: FAILED, with the breaker's message; what it logged stays."""
    message = str(error)
    by_breaker = isinstance(error, ProviderError)
    result.status, result.error = "failed", message
    result.degraded_reason = f"Stopped by the circuit breaker: {error.message}" if by_breaker else f"Failed: {error.message}"
    callback.emit(force=True, phase="failed", message=message[:2000], error=message[:2000], degraded=True,
                  degraded_reason=result.degraded_reason[:2000], **({"stopped_by": "breaker"} if by_breaker else {}))
    callback.log_spend()
    store.set_tags(result.run_id, {f"{TAG}error": message[:5000], f"{TAG}degraded": "true",
                                   f"{TAG}degraded_reason": result.degraded_reason[:5000],
                                   **({f"{TAG}stopped_by": "breaker"} if by_breaker else {})})
    store.log_artifacts(result.run_id, {"progress.json": callback.state})
    store.end_run(result.run_id, "FAILED")
    result.progress = callback.state
    return result
