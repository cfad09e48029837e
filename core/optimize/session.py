"""What every optimizer's run shares, around its own search step: the run's inputs (:class:`RunContext`), the
MLflow run it opens (or goes on with), the guarded and traced LMs, cost meters and progress, the stop checks
(cancel, circuit breaker, spending cap), and its end (artifacts, metrics, the paired test evaluation, a run that
a dead provider stopped). ``core.optimize.run`` (GEPA) and ``core.optimize.compiled`` (the others) each add one
search function: ``run_optimizer(ctx, search, ...)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import dspy

from core.config.errors import ProviderError, StudioError
from core.evaluation.scorer import task_tags
from core.lm.breaker import BreakerSettings
from core.lm.models import ModelSpec, Price, build_lm, resolve_price
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import Plan
from core.optimize.finish import PairedResult, PairOptions, evaluate_pair, evaluation_reasons
from core.optimize.guard import CallGuard, ProposalCounter, guard_lm
from core.optimize.lifecycle import close_orphan_evaluations
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressSink
from core.program.program import get_instruction, instructions_record, program_to_dict, to_examples
from core.program.user_program import program_tags
from core.tasks import Splits, Task, split_fingerprint
from core.tracking import tracing
from core.tracking.run_inputs import spec_params
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

LMFactory = Callable[[ModelSpec], Any]
FAULT_TAGS = ("error", "stopped_by", "degraded", "degraded_reason", "stop_reason", "state")


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


@dataclass(frozen=True)
class RunContext:
    """What one optimization run is given (``core.optimize.optimizers.run_optimization`` builds it).

    ``log_dir`` is GEPA's run directory (a second run with the same ``log_dir`` and ``run_id`` resumes it);
    ``previous`` is the progress of earlier attempts; ``should_stop`` is the one cancel channel; ``lm_factory``
    builds the LMs instead of the model specs (tests); ``extra_callbacks`` are added to GEPA's."""

    config: OptimizeConfig
    store: RunStore
    plan: Plan
    log_dir: Path
    job_id: str | None = None
    run_id: str | None = None
    progress: ProgressSink | None = None
    previous: OptimizeProgress | None = None
    should_stop: Callable[[], bool] | None = None
    lm_factory: LMFactory | None = None
    on_run_created: Callable[[str], None] | None = None
    extra_callbacks: list[Any] | None = None

    @property
    def prev(self) -> OptimizeProgress:
        return self.previous or {}  # type: ignore[return-value]


@dataclass
class Stop:
    """Why the search stopped early ("" when it did not) and, for a dead provider, its error."""

    why: str = ""
    failure: StudioError | None = None


@dataclass
class Session:
    """One optimization run under way: its MLflow run, the guarded and traced LMs (``reflection_lm`` None when the
    optimizer has no reflection model), meters, progress callback and the examples."""

    ctx: RunContext
    run_id: str
    limits: BreakerSettings
    guards: tuple[CallGuard, CallGuard]
    proposals: ProposalCounter | None
    student_lm: Any
    reflection_lm: Any
    meters: tuple[CostMeter, CostMeter]
    callback: ProgressCallback
    train: list[dspy.Example]
    val: list[dspy.Example] | None
    roles: Any = None  # what tells the traces each call's role (GEPA's SearchRecorder)
    stop: Stop = field(default_factory=Stop)

    def should_stop(self, also: Callable[[], StudioError | None] | None = None) -> bool:
        """Cancelled, a tripped breaker, ``also`` (an optimizer's own stop for a dead provider) or the spending cap:
        records why in ``stop`` and says whether to stop now."""
        ctx, stop = self.ctx, self.stop
        if ctx.should_stop and ctx.should_stop():
            stop.why = "cancelled"
            return True
        tripped = next((g for g in self.guards if g.tripped), None)
        failure = tripped.error() if tripped is not None else (also() if also else None)
        if failure is not None:
            stop.why, stop.failure = "circuit breaker", failure
            return True
        cap = ctx.config.max_cost_usd
        if cap is not None and self.callback.total_cost() >= cap:
            stop.why = f"spending cap {cap_text(cap)} reached"
            return True
        return False


@dataclass
class Searched:
    """What an optimizer's search step gives the shared end: the starting and the optimized program, whether it
    stopped early (and why) or failed, and its own artifacts, metrics and progress fields."""

    program: dspy.Module
    optimized: dspy.Module
    why: str
    stopped: bool
    failure: StudioError | None
    files: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)


class _NoLM:
    """The reflection side of a run that has no reflection model: no calls, no spend."""

    history: list[dict[str, Any]] = []


def cap_text(usd: float) -> str:
    """A spending cap as people typed it: $0.05, $2.00, $0.002."""
    return f"${usd:.2f}" if usd >= 0.01 and round(usd, 2) == usd else f"${usd:.4g}"


def _config_params(config: OptimizeConfig, task: Task, splits: Splits) -> dict[str, Any]:
    return {
        **{f"student_{k}": v for k, v in spec_params(config.student).items()},
        **({f"reflection_{k}": v for k, v in spec_params(config.reflection).items()} if config.reflection else {}),
        "task": task.name, "task_source": config.task_ref.source or config.task_ref.kind,
        **{f"sample_{k}": v for k, v in config.sample.to_dict().items()},
        "n_train": len(splits.train), "n_val": len(splits.val) if splits.val is not None else 0,
        "n_test": len(splits.test), "optimizer": config.optimizer, "budget": config.budget_label(),
        "max_cost_usd": config.max_cost_usd, "module": "program" if task.program else config.module,
        "start": config.start, **({"component_selector": config.component_selector} if task.num_predictors > 1
                                  else {}),
        "reflection_minibatch_size": config.reflection_minibatch_size, "use_merge": config.use_merge,
        "threads": config.threads, "seed": config.seed, "feedback": config.feedback,
        "test_fingerprint": split_fingerprint(splits.test, task),
    }


def open_run(ctx: RunContext) -> str:
    """Start the optimization's MLflow run (named "<Optimizer> · <student> ← <model>", tagged with the optimizer as
    ``studio.program``), or, on a resume, clear the earlier attempt's fault tags and mark it RUNNING again."""
    store, config, (task, splits), run_id = ctx.store, ctx.config, (ctx.plan.task, ctx.plan.splits), ctx.run_id
    if run_id is None:
        other = config.second_model
        name = f"{config.label} · {config.student.name}" + (f" ← {other.name}" if other else "")
        run_id = store.start_run("optimization", task.name, run_name=name, params=_config_params(config, task, splits),
                                 tags={f"{TAG}model": config.student.name, f"{TAG}program": config.optimizer,
                                       f"{TAG}start": config.start, f"{TAG}repeat_key": config.repeat_key(),
                                       **task_tags(task), **({f"{TAG}module": "program"} if task.program else {}),
                                       **({f"{TAG}reflection_model": other.name} if other else {}),
                                       **({f"{TAG}job_id": ctx.job_id} if ctx.job_id else {}),
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
    if ctx.on_run_created:
        ctx.on_run_created(run_id)
    return run_id


Roles = Callable[[tuple[CostMeter, CostMeter], list[dspy.Example]], Any]  # (meters, GEPA's valset) -> roles


def open_session(ctx: RunContext, reflection: ModelSpec | None, *, budget: int,
                 proposals: ProposalCounter | None = None, roles: Roles | None = None) -> Session:
    """Guard and build the LMs (a circuit breaker per model), open the MLflow run, meter the spend, and trace
    the calls. ``reflection`` None: the optimizer calls no reflection model (its guard watches the student's)."""
    config, prev, task = ctx.config, ctx.prev, ctx.plan.task
    limits = BreakerSettings.from_env()
    guards = (CallGuard("student", config.student, limits, int(prev.get("student_calls", 0)),
                        int(prev.get("failed_student_calls", 0))),
              CallGuard("reflection", reflection or config.student, limits, int(prev.get("reflection_calls", 0)),
                        int(prev.get("failed_reflection_calls", 0))))
    make_lm = ctx.lm_factory or (lambda spec: build_lm(spec, cache=config.cache))
    student_lm = guard_lm(make_lm(config.student), guards[0])
    reflection_lm = guard_lm(make_lm(reflection), guards[1]) if reflection else None
    splits = ctx.plan.splits
    train = to_examples(splits.train, task)
    val = to_examples(splits.val, task) if splits.val is not None and len(splits.val) else None
    run_id = open_run(ctx)
    meters = (CostMeter(student_lm, resolve_price(config.student), float(prev.get("student_cost_usd", 0.0))),
              CostMeter(reflection_lm or _NoLM(), resolve_price(reflection) if reflection else Price(0.0, 0.0, "local"),
                        float(prev.get("reflection_cost_usd", 0.0))))
    callback = ProgressCallback(ctx.progress or (lambda p: None), budget, meters, prev, run=(ctx.store, run_id),
                                guards=guards, proposals=proposals)
    source = roles(meters, val if val is not None else train) if roles else None
    traced = tracing.trace_optimization(ctx.store, run_id, task, (train, val),
                                        (student_lm, reflection_lm or student_lm),
                                        (config.student, reflection or config.student), roles=source)
    return Session(ctx, run_id, limits, guards, proposals, traced[0], traced[1] if reflection else None, meters,
                   callback, train, val, roles=source)


def run_optimizer(ctx: RunContext, search: Callable[[Session], Searched | OptimizeResult],
                  reflection: ModelSpec | None, *, budget: int, proposals: ProposalCounter | None = None,
                  roles: Roles | None = None) -> OptimizeResult:
    """The skeleton of every optimizer's run: open the session, run ``search`` (the optimizer's own step; it
    returns a result itself only when it ended the run), then save both programs, log the metrics and evaluate
    original and optimized on the same test examples."""
    session = open_session(ctx, reflection, budget=budget, proposals=proposals, roles=roles)
    out = search(session)
    return out if isinstance(out, OptimizeResult) else finish_run(session, out)


def _log_search(session: Session, out: Searched) -> None:
    """The programs, instructions and progress as artifacts; the cost, token and fault counts as metrics."""
    ctx, callback, meters = session.ctx, session.callback, session.meters
    task = ctx.plan.task
    if task.program:  # your own program: which file, as what it was when the search started
        ctx.store.set_tags(session.run_id, {f"{TAG}{k}": v for k, v in program_tags(task, out.program).items()})
    ctx.store.log_artifacts(session.run_id, {
        "optimized_program.json": program_to_dict(out.optimized, task),
        "original_program.json": program_to_dict(out.program, task),
        "instructions.json": instructions_record(out.program, out.optimized),
        "progress.json": callback.state, **out.files,
    })
    state = callback.state
    ctx.store.log_metrics(session.run_id, {
        "optimization_cost_usd": state["total_cost_usd"], "student_cost_usd": state["student_cost_usd"],
        "reflection_cost_usd": state["reflection_cost_usd"], "metric_calls_used": state["metric_calls_used"],
        "iterations": state["iteration"], "elapsed_s": state["elapsed_s"],
        "student_input_tokens": meters[0].input_tokens, "student_output_tokens": meters[0].output_tokens,
        "reflection_input_tokens": meters[1].input_tokens, "reflection_output_tokens": meters[1].output_tokens,
        **out.metrics, **callback.spend_metrics(), **callback.fault_metrics(),
    }, step=callback.step())


def finish_run(session: Session, out: Searched) -> OptimizeResult:
    """The shared end of a search: artifacts and metrics; then a failed or stopped run ends (FAILED, KILLED), and
    a finished one gets its paired test evaluation (child runs), its degraded reasons and ends FINISHED."""
    ctx, callback, run_id, store = session.ctx, session.callback, session.run_id, session.ctx.store
    callback.emit(force=True, phase="stopped" if out.stopped or out.failure else "evaluating",
                  message=out.why or "Evaluating original and optimized on the test set", **out.progress)
    _log_search(session, out)
    result = OptimizeResult(run_id=run_id, status="cancelled" if out.stopped else "succeeded", stop_reason=out.why,
                            best_instruction=get_instruction(out.optimized),
                            original_instruction=get_instruction(out.program))
    if out.failure is not None:
        return fail_run(store, result, callback, out.failure)
    if out.stopped:
        store.set_tags(run_id, {f"{TAG}stop_reason": out.why})
        store.end_run(run_id, "KILLED")
        result.progress = callback.state
        return result
    try:  # paired comparison: both programs on the identical test examples, as child runs
        pair = evaluate_pair(store, ctx.config, ctx.plan.task, ctx.plan.splits.test, (out.program, out.optimized),
                             run_id=run_id, options=PairOptions(job_id=ctx.job_id,
                                                                lm=session.student_lm if ctx.lm_factory else None))
    except StudioError as exc:  # the student died during the test evaluation (its breaker stopped it)
        return fail_run(store, result, callback, exc)
    assert pair is not None  # nothing stops it but a dead provider
    result.original_eval_run_id, result.optimized_eval_run_id = pair.original_eval_run_id, pair.optimized_eval_run_id
    result.original_accuracy, result.optimized_accuracy = pair.original_accuracy, pair.optimized_accuracy
    result.prompt_uri = pair.prompt_uri
    store.log_metrics(run_id, callback.fault_metrics(), step=callback.step())
    reasons = degraded_reasons(session.guards, session.proposals, session.limits, pair)
    if reasons:
        result.degraded_reason = "; ".join(reasons)
        store.set_tags(run_id, {f"{TAG}degraded": "true", f"{TAG}degraded_reason": result.degraded_reason[:5000]})
    callback.emit(force=True, phase="done", message="Finished", degraded=bool(reasons),
                  **({"degraded_reason": result.degraded_reason} if reasons else {}))
    store.log_artifacts(run_id, {"progress.json": callback.state})
    store.end_run(run_id, "FINISHED")
    result.progress = callback.state
    return result


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


def fail_run(store: RunStore, result: OptimizeResult, callback: ProgressCallback, error: StudioError) -> OptimizeResult:
    """End a run that a dead provider stopped: FAILED, with the breaker's message; what it logged stays."""
    message = str(error)
    by_breaker = isinstance(error, ProviderError)
    stopped_by = "breaker" if by_breaker else getattr(error, "stopped_by", None)  # e.g. no_proposal
    result.status, result.error = "failed", message
    result.degraded_reason = (f"Stopped by the circuit breaker: {error.message}" if by_breaker
                              else f"Failed: {error.message}")
    callback.emit(force=True, phase="failed", message=message[:2000], error=message[:2000], degraded=True,
                  degraded_reason=result.degraded_reason[:2000], **({"stopped_by": stopped_by} if stopped_by else {}))
    callback.log_spend()
    store.set_tags(result.run_id, {f"{TAG}error": message[:5000], f"{TAG}degraded": "true",
                                   f"{TAG}degraded_reason": result.degraded_reason[:5000],
                                   **({f"{TAG}stopped_by": stopped_by} if stopped_by else {})})
    store.log_artifacts(result.run_id, {"progress.json": callback.state})
    store.end_run(result.run_id, "FAILED")
    result.progress = callback.state
    return result
