"""GEPA on a student model with a reflection model: config (checked when built), estimate and plan,
typed progress with cost meters and fault counts, a guard with a circuit breaker on each model's calls,
and one run (``run_optimization``)."""

from core.optimize.config import BUDGETS, Budget, OptimizeConfig
from core.optimize.estimate import Estimate, Plan, estimate, metric_call_budget, plan_optimization
from core.optimize.guard import CallGuard, ProposalCounter, failure_kind, guard_lm
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressPoint, ProgressSink
from core.optimize.run import (
    OptimizeResult,
    close_orphan_evaluations,
    prompt_name,
    register_prompt,
    run_optimization,
)

__all__ = [
    "BUDGETS", "Budget", "CallGuard", "CostMeter", "Estimate", "ProposalCounter", "close_orphan_evaluations",
    "failure_kind", "guard_lm", "OptimizeConfig", "OptimizeProgress", "OptimizeResult", "Plan",
    "ProgressCallback", "ProgressPoint", "ProgressSink", "estimate", "metric_call_budget", "plan_optimization",
    "prompt_name", "register_prompt", "run_optimization",
]
