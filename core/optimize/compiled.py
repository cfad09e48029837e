"""The run of an optimizer other than GEPA (MIPROv2, few-shot, your own prompt): the same MLflow run, artifacts,
metrics and paired test evaluation as a GEPA run, around the optimizer's ``compile`` step
(``core.optimize.teleprompt``), so Compare, Prompts and the report show them together.

Differences from GEPA: no ``search.json`` (GEPA's search record); a resume starts the optimizer again in the same
MLflow run (DSPy's MIPROv2 and few-shot keep no state to go on from), counting the earlier attempts' spend.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import dspy

from core.config.errors import StudioError
from core.optimize.lifecycle import INTERRUPTED, ends_interrupted
from core.optimize.session import OptimizeResult, RunContext, Searched, Session, fail_run, run_optimizer
from core.optimize.teleprompt import CompileContext, Compiled, starting_program
from core.program.metric import make_metric
from core.program.program import get_instruction
from core.tracking import tracing
from core.tracking.store import TAG

logger = logging.getLogger(__name__)

Compile = Callable[[CompileContext], Compiled]


@ends_interrupted  # Ctrl-C: the run ends KILLED, tagged interrupted; a resume restarts it in the same run
def run_compiled(ctx: RunContext, *, compile: Compile) -> OptimizeResult:
    """Run ``compile`` on the student (and the reflection model, as prompt model or teacher, when there is one),
    save both programs, evaluate them on the same test examples as child runs. Cancel and the spending cap are
    seen where the optimizer looks at ``should_stop``; a dead provider ends the run ``failed``."""
    other = ctx.config.second_model
    return run_optimizer(ctx, lambda session: _search(session, compile), other,
                         budget=ctx.plan.estimate.metric_calls)


def _counted_metric(session: Session) -> Callable[..., float]:
    """The task's score, each call counted as a metric call in the progress."""
    task = session.ctx.plan.task
    score = make_metric(task, "rule", judge_lm=session.reflection_lm if task.metric == "judge" else None)
    counted = {"calls": 0}
    lock = threading.Lock()
    before = int(session.ctx.prev.get("metric_calls_used", 0))

    def metric(gold: Any, pred: Any, trace: Any = None, *args: Any, **kwargs: Any) -> float:
        with lock:
            counted["calls"] += 1
            n = counted["calls"]
        session.callback.emit(metric_calls_used=before + n)
        return float(score(gold, pred, trace).score)

    return metric


def _search(session: Session, compile: Compile) -> Searched | OptimizeResult:
    """The optimizer's compile step; what it found and why it stopped (a failed one ends the run here)."""
    ctx, callback = session.ctx, session.callback
    config, task = ctx.config, ctx.plan.task
    program = starting_program(config, task)
    cctx = CompileContext(config, task, program, session.train, session.val, session.student_lm,
                          session.reflection_lm, _counted_metric(session),
                          report=lambda **changes: callback.emit(force=True, **changes),
                          should_stop=lambda: session.should_stop() or bool(session.stop.why))
    callback.emit(force=True, phase="optimizing", message=f"{config.label}: starting")
    try:
        with dspy.context(lm=session.student_lm):
            out = compile(cctx)
    except KeyboardInterrupt:  # the progress says so (its counts carry to the resume); the wrapper ends the run
        callback.emit(force=True, phase="interrupted", message=INTERRUPTED)
        raise
    except Exception as exc:  # noqa: BLE001 - _failed ends the run failed, and re-raises what is not a provider's
        return _failed(session, program, exc)
    finally:
        tracing.flush()
        callback.log_spend()  # whatever ends the compile step (an interrupt included), its spend is logged
    failure = session.stop.failure
    stopped = (out.stopped or bool(session.stop.why)) and failure is None
    return Searched(program, out.program, session.stop.why or ("cancelled" if stopped else ""), stopped, failure,
                    files={"trials.json": {"optimizer": config.optimizer, "trials": out.trials}} if out.trials else {},
                    metrics={"candidates": float(out.candidates),
                             **({"best_val_score": out.best_val_score} if out.best_val_score is not None else {})},
                    progress={"candidates": out.candidates, "best_val_score": out.best_val_score})


def _failed(session: Session, program: dspy.Module, exc: Exception) -> OptimizeResult:
    """A compile step that raised: a dead provider (the breaker's message, not DSPy's "too many errors") or one of
    ours ends the run failed; anything else ends it FAILED and goes on up."""
    store, callback, run_id = session.ctx.store, session.callback, session.run_id
    tripped = next((g for g in session.guards if g.tripped), None)
    result = OptimizeResult(run_id=run_id, status="failed", stop_reason="", best_instruction="",
                            original_instruction=get_instruction(program))
    if tripped is not None:
        return fail_run(store, result, callback, tripped.error())
    if isinstance(exc, StudioError):
        return fail_run(store, result, callback, exc)
    callback.emit(force=True, phase="failed", message=str(exc)[:2000], error=str(exc)[:2000])
    callback.log_spend()  # a failed run shows what it spent
    store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
    store.end_run(run_id, "FAILED")
    raise exc
