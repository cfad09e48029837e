"""The run of an optimizer other than GEPA (MIPROv2, few-shot, your own prompt): the same MLflow run, artifacts,
metrics and paired test evaluation as a GEPA run, around the optimizer's ``compile`` step
(``core.optimize.teleprompt``), so Compare, Prompts and the report show them together.

Differences from GEPA: no ``search.json`` (GEPA's search record); a resume starts the optimizer again in the same
MLflow run (DSPy's MIPROv2 and few-shot keep no state to go on from), counting the earlier attempts' spend.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

import dspy

from core.config.errors import ProviderError, StudioError
from core.lm.breaker import BreakerSettings
from core.lm.models import Price, build_lm, resolve_price
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import Plan
from core.optimize.finish import evaluate_pair
from core.optimize.guard import CallGuard, guard_lm
from core.optimize.lifecycle import INTERRUPTED, ends_interrupted
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressSink
from core.optimize.run import LMFactory, OptimizeResult, cap_text, degraded_reasons, fail_run, open_run
from core.optimize.teleprompt import CompileContext, Compiled, starting_program
from core.program.metric import make_metric
from core.program.program import get_instruction, program_to_dict, to_examples
from core.tracking import tracing
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

Compile = Callable[[CompileContext], Compiled]


class _NoLM:
    """The reflection side of a run that has no reflection model: no calls, no spend."""

    history: list[dict[str, Any]] = []


@ends_interrupted  # Ctrl-C: the run ends KILLED, tagged interrupted; a resume restarts it in the same run
def run_compiled(
    config: OptimizeConfig,
    store: RunStore,
    *,
    compile: Compile,
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
    """Run ``compile`` on the student (and the reflection model, as prompt model or teacher, when there is one),
    save both programs, evaluate them on the same test examples as child runs. Cancel and the spending cap are
    seen where the optimizer looks at ``should_stop``; a dead provider ends the run ``failed``."""
    del log_dir, extra_callbacks  # GEPA's state folder and callbacks: nothing here uses them
    sink = progress or (lambda p: None)
    task, splits = plan.task, plan.splits
    prev = previous or {}
    limits = BreakerSettings.from_env()
    other = config.reflection if config.optimizer != "own" else None
    guards = (CallGuard("student", config.student, limits, int(prev.get("student_calls", 0)),
                        int(prev.get("failed_student_calls", 0))),
              CallGuard("reflection", other or config.student, limits, int(prev.get("reflection_calls", 0)),
                        int(prev.get("failed_reflection_calls", 0))))
    make_lm = lm_factory or (lambda spec: build_lm(spec, cache=config.cache))
    student_lm = guard_lm(make_lm(config.student), guards[0])
    reflection_lm = guard_lm(make_lm(other), guards[1]) if other else None
    train, test = to_examples(splits.train, task), splits.test
    val = to_examples(splits.val, task) if splits.val is not None and len(splits.val) else None
    run_id = open_run(store, config, task, splits, job_id=job_id, run_id=run_id, on_run_created=on_run_created)

    meters = (CostMeter(student_lm, resolve_price(config.student), float(prev.get("student_cost_usd", 0.0))),
              CostMeter(reflection_lm or _NoLM(), resolve_price(other) if other else Price(0.0, 0.0, "local"),
                        float(prev.get("reflection_cost_usd", 0.0))))
    callback = ProgressCallback(sink, plan.estimate.metric_calls, *meters, previous=prev, store=store, run_id=run_id,
                                guards=guards)
    traced = tracing.trace_optimization(store, run_id, task, train, val, (student_lm, reflection_lm or student_lm),
                                        (config.student, other or config.student))
    student_lm, reflection_lm = traced[0], traced[1] if other else None
    stop: dict[str, Any] = {"why": "", "failure": None}

    def stopper() -> bool:
        if should_stop and should_stop():
            stop["why"] = "cancelled"
        elif any(g.tripped for g in guards):
            stop["why"], stop["failure"] = "circuit breaker", next(g.error() for g in guards if g.tripped)
        elif config.max_cost_usd is not None and callback.total_cost() >= config.max_cost_usd:
            stop["why"] = f"spending cap {cap_text(config.max_cost_usd)} reached"
        return bool(stop["why"])

    score = make_metric(task, "rule")
    counted = {"calls": 0}
    lock = threading.Lock()

    def metric(gold: Any, pred: Any, trace: Any = None, *args: Any, **kwargs: Any) -> float:
        with lock:
            counted["calls"] += 1
            n = counted["calls"]
        callback.emit(metric_calls_used=int(prev.get("metric_calls_used", 0)) + n)
        return float(score(gold, pred, trace).score)

    program = starting_program(config, task)
    ctx = CompileContext(config, task, program, train, val, student_lm, reflection_lm, metric,
                         report=lambda **changes: callback.emit(force=True, **changes), should_stop=stopper)
    callback.emit(force=True, phase="optimizing", message=f"{config.label}: starting")
    try:
        with dspy.context(lm=student_lm):
            out = compile(ctx)
    except KeyboardInterrupt:  # the progress says so (its counts carry to the resume); the wrapper ends the run
        callback.emit(force=True, phase="interrupted", message=INTERRUPTED)
        raise
    except Exception as exc:
        tripped = next((g for g in guards if g.tripped), None)
        result = OptimizeResult(run_id=run_id, status="failed", stop_reason="", best_instruction="",
                                original_instruction=get_instruction(program))
        if tripped is not None:  # a dead provider: the breaker's message, not DSPy's "too many errors"
            return fail_run(store, result, callback, tripped.error())
        if isinstance(exc, StudioError):
            return fail_run(store, result, callback, exc)
        callback.emit(force=True, phase="failed", message=str(exc)[:2000], error=str(exc)[:2000])
        callback.log_spend()  # a failed run shows what it spent
        store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
        store.end_run(run_id, "FAILED")
        raise
    finally:
        tracing.flush()
        callback.log_spend()  # whatever ends the compile step (an interrupt included), its spend is logged

    failure: ProviderError | None = stop["failure"]
    stopped = (out.stopped or bool(stop["why"])) and failure is None
    why = stop["why"] or ("cancelled" if stopped else "")
    callback.emit(force=True, phase="stopped" if stopped or failure else "evaluating",
                  message=why or "Evaluating original and optimized on the test set",
                  candidates=out.candidates, best_val_score=out.best_val_score)
    original_instruction, best_instruction = get_instruction(program), get_instruction(out.program)
    files: dict[str, Any] = {
        "optimized_program.json": program_to_dict(out.program, task),
        "original_program.json": program_to_dict(program, task),
        "instructions.json": {"original": original_instruction, "optimized": best_instruction},
        "progress.json": callback.state,
    }
    if out.trials:
        files["trials.json"] = {"optimizer": config.optimizer, "trials": out.trials}
    store.log_artifacts(run_id, files)
    state = callback.state
    store.log_metrics(run_id, {
        "optimization_cost_usd": state["total_cost_usd"], "student_cost_usd": state["student_cost_usd"],
        "reflection_cost_usd": state["reflection_cost_usd"], "metric_calls_used": state["metric_calls_used"],
        "candidates": float(out.candidates), "iterations": state["iteration"], "elapsed_s": state["elapsed_s"],
        **({"best_val_score": out.best_val_score} if out.best_val_score is not None else {}),
        "student_input_tokens": meters[0].input_tokens, "student_output_tokens": meters[0].output_tokens,
        "reflection_input_tokens": meters[1].input_tokens, "reflection_output_tokens": meters[1].output_tokens,
        **callback.spend_metrics(), **callback.fault_metrics(),
    }, step=callback.step())
    result = OptimizeResult(run_id=run_id, status="cancelled" if stopped else "succeeded", stop_reason=why,
                            best_instruction=best_instruction, original_instruction=original_instruction)
    if failure is not None:
        return fail_run(store, result, callback, failure)
    if stopped:
        store.set_tags(run_id, {f"{TAG}stop_reason": why})
        store.end_run(run_id, "KILLED")
        result.progress = callback.state
        return result

    try:
        pair = evaluate_pair(store, config, task, test, (program, out.program), run_id=run_id, job_id=job_id,
                             lm=student_lm if lm_factory else None)
    except StudioError as exc:
        return fail_run(store, result, callback, exc)
    assert pair is not None  # nothing stops it but a dead provider
    result.original_eval_run_id, result.optimized_eval_run_id = pair.original_eval_run_id, pair.optimized_eval_run_id
    result.original_accuracy, result.optimized_accuracy = pair.original_accuracy, pair.optimized_accuracy
    result.prompt_uri = pair.prompt_uri
    reasons = degraded_reasons(guards, None, limits, pair)
    if reasons:
        result.degraded_reason = "; ".join(reasons)
        store.set_tags(run_id, {f"{TAG}degraded": "true", f"{TAG}degraded_reason": result.degraded_reason[:5000]})
    callback.emit(force=True, phase="done", message="Finished", degraded=bool(reasons),
                  **({"degraded_reason": result.degraded_reason} if reasons else {}))
    store.log_artifacts(run_id, {"progress.json": callback.state})
    store.end_run(run_id, "FINISHED")
    result.progress = callback.state
    return result
