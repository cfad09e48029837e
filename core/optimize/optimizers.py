"""THE table of optimizers: GEPA, MIPROv2, few-shot and your own prompt. Each entry says what its reflection
model is for, how to estimate it and how to run it; planning, the job kind, the CLI and the pages read this table.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from core.config.settings import Settings
from core.lm.limits.slots import THREADS_CAPPED_TAG, cap_threads
from core.optimize.compiled import run_compiled
from core.optimize.config import OPTIMIZER_LABELS, OptimizeConfig, OptimizerName
from core.optimize.estimate import Estimate, Plan, estimate_fewshot, estimate_gepa, estimate_miprov2, estimate_own
from core.optimize.progress import ProgressSink
from core.optimize.run import OptimizeResult, run_gepa
from core.optimize.teleprompt import compile_fewshot, compile_miprov2, compile_own
from core.tasks import Splits, Task, prepare
from core.tracking.store import RunStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: its name, what its reflection model does, its estimate and its run."""

    name: OptimizerName
    label: str
    reflection_role: str  # what the reflection model is to it ("" when it uses none)
    summary: str
    estimate: Callable[[OptimizeConfig, Task, Splits], Estimate]
    run: Callable[..., OptimizeResult]  # run(config, store, *, log_dir, plan, job_id, run_id, progress, ...)
    cancel: str  # where cancel (and the spending cap) takes effect


OPTIMIZERS: dict[str, Optimizer] = {o.name: o for o in (
    Optimizer("gepa", OPTIMIZER_LABELS["gepa"], "reflection model",
              "GEPA: reflects on failures and proposes instructions; budget light/medium/heavy or metric calls",
              estimate_gepa, run_gepa, "between GEPA iterations"),
    Optimizer("miprov2", OPTIMIZER_LABELS["miprov2"], "prompt model and teacher",
              "MIPROv2: proposed instructions and bootstrapped demos, Bayesian search; budget light/medium/heavy",
              estimate_miprov2, functools.partial(run_compiled, compile=compile_miprov2),
              "before proposing, before the trials and between trials"),
    Optimizer("fewshot", OPTIMIZER_LABELS["fewshot"], "teacher",
              "Few-shot: BootstrapFewShotWithRandomSearch with the reflection model as teacher (LabeledFewShot "
              "without one); budget light/medium/heavy (6/12/18 candidates) or N candidates",
              estimate_fewshot, functools.partial(run_compiled, compile=compile_fewshot), "between candidate programs"),
    Optimizer("own", OPTIMIZER_LABELS["own"], "",
              "Your own prompt: your instruction evaluated as it is, no search",
              estimate_own, functools.partial(run_compiled, compile=compile_own), "during the test evaluation only"),
)}


def estimate(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Metric calls, reflection-model calls and a cost range for the config's optimizer on these splits."""
    return OPTIMIZERS[config.optimizer].estimate(config, task, splits)


def plan_optimization(config: OptimizeConfig, settings: Settings) -> Plan:
    """Load and sample the task, check the config against its splits, and estimate (ConfigError if it cannot run)."""
    task, splits = prepare(config.task_ref, config.sample, settings)
    config.check_splits(splits)
    return Plan(config, task, splits, estimate(config, task, splits))


def run_optimization(config: OptimizeConfig, store: RunStore, *, log_dir: Path, plan: Plan | None = None,
                     progress: ProgressSink | None = None, **kwargs: Any) -> OptimizeResult:
    """Run the config's optimizer, save the best program, evaluate original and optimized on the same test
    examples (child runs); every optimizer leaves the same artifacts and metrics (GEPA adds ``search.json``).

    ``log_dir`` is GEPA's run directory (a second call with the same ``log_dir`` and ``run_id`` resumes it);
    ``previous`` is the progress of earlier attempts; ``should_stop`` is the one cancel channel; ``plan`` skips
    re-planning. A dead provider trips a circuit breaker: the result is ``failed`` with the breaker's message.
    """
    if progress:
        progress({"phase": "loading", "message": "Loading the task", "history": []})
    plan = plan or plan_optimization(config, store.settings)
    # A local student's server slots cap the threads (the reflection model is called one at a time); an LM
    # factory's LMs (tests) have no server to ask.
    threads, capped = cap_threads(config.threads, [] if kwargs.get("lm_factory") else [config.student])
    if capped:
        config = replace(config, threads=threads)
        plan = replace(plan, config=config)
        if progress:
            progress({"phase": "loading", "message": f"Threads capped {capped}", "history": []})
        kwargs["on_run_created"] = functools.partial(_note_cap, store, capped, kwargs.get("on_run_created"))
    return OPTIMIZERS[config.optimizer].run(config, store, log_dir=log_dir, plan=plan, progress=progress, **kwargs)


def _note_cap(store: RunStore, capped: str, then: Callable[[str], None] | None, run_id: str) -> None:
    store.set_tags(run_id, {THREADS_CAPPED_TAG: capped})
    if then:
        then(run_id)
