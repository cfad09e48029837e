"""One GEPA run in the calling process: progress, cost cap, cancel, resume, a circuit breaker per model;
every result lands in MLflow. What every optimizer's run shares (the run context, the MLflow run, the end) is in
``core.optimize.session``; this module adds GEPA's search step.

``core.optimize.optimizers.run_optimization`` picks the optimizer; ``core.jobs`` runs it as a background job (the
``optimize`` job kind); the CLI runs it in the foreground.
"""

from __future__ import annotations

import logging
from typing import Any

import dspy

from core.config.errors import ProviderError, StudioError
from core.lm.breaker import HINTS
from core.optimize.estimate import metric_call_budget
from core.optimize.guard import ProposalCounter
from core.optimize.lifecycle import INTERRUPTED, SearchWatch, ends_interrupted, mark_interrupted
from core.optimize.lifecycle import close_orphan_evaluations as close_orphan_evaluations  # re-exported
from core.optimize.search import SearchRecorder
from core.optimize.session import FAULT_TAGS as FAULT_TAGS  # re-exported (the run's shared parts)
from core.optimize.session import LMFactory as LMFactory
from core.optimize.session import OptimizeResult as OptimizeResult
from core.optimize.session import RunContext, Searched, Session, run_optimizer
from core.optimize.session import cap_text as cap_text
from core.optimize.session import degraded_reasons as degraded_reasons
from core.optimize.session import fail_run as fail_run
from core.optimize.session import open_run as open_run
from core.program.metric import make_metric
from core.program.program import make_program
from core.tracking import tracing
from core.tracking.store import TAG

logger = logging.getLogger(__name__)


class _QuietTracebacks(logging.Filter):
    """GEPA logs the traceback of every failed reflection call: for a provider's or a parse error, the counts
    and the breaker's message say it; other tracebacks (bugs) are kept."""

    OURS = ("dspy.utils.exceptions.", "core.lm.breaker.", "core.config.errors.",
            "Exception: No valid predictions found for any module")  # no trajectories: NoProposal says why
    LOGGERS = ("dspy.teleprompt.gepa.gepa", "dspy.utils.parallelizer")  # GEPA's, and a failed example's (parse)

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if "Traceback (most recent call last)" not in text:
            return True
        return not any(line.startswith(self.OURS) for line in text.splitlines())  # the exception lines


@ends_interrupted
def run_gepa(ctx: RunContext) -> OptimizeResult:
    """Run GEPA, save the best program, evaluate original and optimized on the same test examples.

    A second run with the same ``ctx.log_dir`` (and ``run_id``) resumes from the last completed iteration;
    ``should_stop`` is checked between GEPA iterations. A dead student or reflection provider trips a circuit
    breaker: GEPA stops, the best program so far is kept, and the result is ``failed`` with the breaker's message
    (the MLflow run ends FAILED).
    """
    config, splits, prev = ctx.config, ctx.plan.splits, ctx.prev
    assert config.reflection is not None
    proposals = ProposalCounter(int(prev.get("proposals", 0)), int(prev.get("failed_proposals", 0)))
    budget = metric_call_budget(config, len(splits.train), len(splits.val) if splits.val is not None else 0,
                                ctx.plan.task.num_predictors)
    return run_optimizer(ctx, _search, config.reflection, budget=budget, proposals=proposals,
                         roles=lambda meters, valset: SearchRecorder(meters, ctx.log_dir, valset=valset))


def _search(session: Session) -> Searched:
    """GEPA's step: compile the starting program; what it found, why it stopped, and its search record."""
    ctx, proposals = session.ctx, session.proposals
    config, task = ctx.config, ctx.plan.task
    assert proposals is not None
    ctx.log_dir.mkdir(parents=True, exist_ok=True)
    program = make_program(task, config.module, config.instruction or None, start=config.start)
    watch = SearchWatch()  # a search that could not propose (no trajectories) says so
    optimized = _compile(session, _gepa(session, watch), program, watch)
    stop = session.stop
    failure = stop.failure
    if failure is None and not stop.why:  # the budget ran out: did GEPA propose anything at all?
        failure = watch.no_proposal(proposals.started, session.guards[1].calls)
    if failure is None and proposals.started and proposals.succeeded <= 0:
        r = session.guards[1].breaker
        failure = ProviderError(
            f"reflection model {config.reflection.name}: none of its {proposals.started} proposals gave a usable "  # type: ignore[union-attr]
            f"instruction (last error: {r.last_kind or 'parse'}: {r.last_error or 'no instruction in its answer'}).",
            HINTS.get(r.last_kind or "", "Use a strong instruction-following model for reflection."),
            r.last_kind or "parse")
    return Searched(program, optimized, stop.why, bool(stop.why) and failure is None, failure,
                    files=_files(session.roles, optimized), metrics=_metrics(session, optimized))


def _gepa(session: Session, watch: SearchWatch) -> dspy.GEPA:
    """DSPy's GEPA with our metric, stop checks and callbacks (progress, search record, watch)."""
    ctx, config, proposals = session.ctx, session.ctx.config, session.proposals
    assert proposals is not None

    def consecutive_failures() -> StudioError | None:
        if proposals.in_a_row < session.limits.consecutive:
            return None
        r = session.guards[1].breaker
        return ProviderError(
            f"reflection model {config.reflection.name}: stopped after {proposals.in_a_row} proposals in a row "  # type: ignore[union-attr]
            f"gave no usable instruction (last error: {r.last_kind or 'parse'}: "
            f"{r.last_error or 'no instruction in its answer'}).",
            "Use a strong instruction-following model for reflection; the job's log shows its answers.",
            r.last_kind or "parse")

    # The rubric judge of a task scored by one is the reflection model (its calls: the role judge).
    judge = session.reflection_lm if config.feedback == "judge" or ctx.plan.task.metric == "judge" else None
    callbacks = [session.callback, session.roles, watch, *(ctx.extra_callbacks or [])]
    return dspy.GEPA(
        metric=make_metric(ctx.plan.task, config.feedback, judge_lm=judge), reflection_lm=session.reflection_lm,
        reflection_minibatch_size=config.reflection_minibatch_size, use_merge=config.use_merge,
        component_selector=config.component_selector,
        num_threads=config.threads, seed=config.seed, log_dir=str(ctx.log_dir), track_stats=True,
        max_metric_calls=session.callback.state["metric_calls_budget"],
        gepa_kwargs={"callbacks": callbacks,
                     "stop_callbacks": [lambda _state=None: session.should_stop(consecutive_failures)]},
    )


def _compile(session: Session, gepa: dspy.GEPA, program: dspy.Module, watch: SearchWatch) -> dspy.Module:
    """Run GEPA; a failure (or Ctrl-C: interrupted, resumable from GEPA's state) ends the run and goes on up."""
    callback, run_id, store = session.callback, session.run_id, session.ctx.store
    loggers, quiet = [logging.getLogger(name) for name in _QuietTracebacks.LOGGERS], _QuietTracebacks()
    for logger_ in loggers:
        logger_.addFilter(quiet)
    try:
        with dspy.context(lm=session.student_lm, callbacks=[*dspy.settings.get("callbacks", []), watch.parses]):
            return gepa.compile(program, trainset=session.train, valset=session.val)
    except BaseException as exc:
        ctrl_c = isinstance(exc, KeyboardInterrupt)  # interrupted, not failed: a resume goes on from GEPA's state
        message = INTERRUPTED if ctrl_c else str(exc)[:2000]
        callback.emit(force=True, phase="interrupted" if ctrl_c else "failed", message=message,
                      **({} if ctrl_c else {"error": message}))
        callback.log_spend()  # a failed run shows what it spent
        if not ctrl_c:
            store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
        try:
            store.log_artifacts(run_id, {"search.json": session.roles.record()})
            store.log_metrics(run_id, session.roles.error_metrics())
        except Exception as log_exc:  # noqa: BLE001 - the run's own failure is what it must report
            logger.warning("could not log search.json: %s", log_exc)
        if ctrl_c:
            mark_interrupted(store, run_id)
        else:
            store.end_run(run_id, "FAILED")
        raise
    finally:
        for logger_ in loggers:
            logger_.removeFilter(quiet)
        tracing.flush()  # a stopped or failed run shows its traces too
        callback.log_spend()  # and its spend, whatever ended it (an interrupt included)


def _files(recorder: SearchRecorder, optimized: dspy.Module) -> dict[str, Any]:
    files: dict[str, Any] = {"search.json": recorder.record()}
    details = getattr(optimized, "detailed_results", None)
    if details is not None:
        try:
            files["detailed_results.json"] = details.to_dict()
        except Exception as exc:  # noqa: BLE001
            logger.warning("detailed_results not serializable: %s", exc)
    return files


def _metrics(session: Session, optimized: dspy.Module) -> dict[str, float]:
    """GEPA's own metrics: candidates and best validation score (from its detailed results), metric calls, errors
    of the search record."""
    details, state = getattr(optimized, "detailed_results", None), session.callback.state
    metrics = {
        "candidates": float(len(details.candidates)) if details is not None else float(state["candidates"]),
        "best_val_score": (float(max(details.val_aggregate_scores)) if details is not None
                           else float(state["best_val_score"] or 0)),
        **session.roles.error_metrics(),
    }
    if details is not None and getattr(details, "total_metric_calls", None) is not None:
        metrics["total_metric_calls"] = float(details.total_metric_calls)
    return metrics
