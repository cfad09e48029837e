"""Optimizers (THE table ``OPTIMIZERS``: GEPA, MIPROv2, few-shot, your own prompt) on a student model with a
reflection model: config (checked when built), estimate and plan,
typed progress with cost meters and fault counts, a guard with a circuit breaker on each model's calls,
a record of GEPA's search (``SearchRecorder``, logged as ``search.json``), one run (``run_optimization``), and
the paired test evaluations that finish it, or finish a stopped one later (``finish``)."""

from core.optimize.config import BUDGETS, Budget, OptimizeConfig
from core.optimize.estimate import Estimate, Plan, metric_call_budget
from core.optimize.finish import (
    FinishPlan,
    FinishProgress,
    FinishResult,
    PairedResult,
    PairOptions,
    check_finishable,
    estimate_finish,
    evaluate_pair,
    finish_optimization,
    plan_finish,
    prompt_name,
    register_prompt,
)
from core.optimize.guard import CallGuard, ProposalCounter, failure_kind, guard_lm
from core.optimize.optimizers import OPTIMIZERS, Optimizer, Words, entry, estimate, plan_optimization, run_optimization
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressPoint, ProgressSink
from core.optimize.run import OptimizeResult, cap_text, close_orphan_evaluations
from core.optimize.search import SearchRecorder
from core.optimize.session import RunContext

__all__ = [
    "BUDGETS", "Budget", "OPTIMIZERS", "Optimizer", "Words", "entry", "CallGuard", "CostMeter", "Estimate",
    "FinishPlan", "FinishProgress", "FinishResult", "PairedResult", "PairOptions",
    "ProposalCounter", "cap_text", "check_finishable", "close_orphan_evaluations", "estimate_finish", "evaluate_pair",
    "failure_kind", "finish_optimization", "guard_lm", "OptimizeConfig", "OptimizeProgress", "OptimizeResult", "Plan",
    "ProgressCallback", "ProgressPoint", "ProgressSink", "estimate", "metric_call_budget", "plan_finish",
    "plan_optimization", "prompt_name", "register_prompt", "run_optimization", "RunContext", "SearchRecorder",
]
