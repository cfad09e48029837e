"""The table of job kinds: what a job of each kind does, as ``run(config, ctx) -> JobOutcome``.

A new kind (another optimizer, a sweep) is one :class:`JobKind` entry in :data:`KINDS`; the registry,
the worker, the CLI and the pages read this table. ``ctx`` gives the job its progress sink, the one
cancel channel (``should_stop``), its folder, its stored plan and the settings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, TypedDict

from core.settings import Settings
from core.store import RunStore
from core.tasks import Splits, Task

Outcome = Literal["succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class JobOutcome:
    state: Outcome
    error: str | None = None


@dataclass
class JobContext:
    """What a running job may use; built by the worker from the registry."""

    job_id: str
    job_dir: Path
    settings: Settings
    emit: Callable[[dict[str, Any]], None]  # write the job's progress (what the dashboard polls)
    should_stop: Callable[[], bool]  # the cancel channel
    set_run_id: Callable[[str], None]  # the job's main MLflow run, once it exists
    run_id: str | None = None  # set on a resume: the run to go on with
    previous: dict[str, Any] = field(default_factory=dict)  # progress of earlier attempts
    plan: dict[str, Any] | None = None  # {"task", "splits"} stored at submission
    lm_factory: Any = None  # tests: ModelSpec -> LM

    def store(self) -> RunStore:
        return RunStore(self.settings)

    def prepared(self) -> tuple[Task, Splits] | None:
        """The task and splits the job was planned with (None for a job stored without a plan)."""
        if not self.plan:
            return None
        return Task.from_dict(self.plan["task"]), Splits.from_dict(self.plan["splits"])


class ModelProgress(TypedDict):
    done: int
    total: int


class BaselineProgress(TypedDict, total=False):
    """What a baseline job reports (its progress.json)."""

    phase: str  # evaluating | done
    models: dict[str, ModelProgress]
    runs: dict[str, dict[str, str | None]]  # model name -> {"run_id", "error"}


def run_optimize(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    from core.optimize import OptimizeConfig, Plan, estimate, run_optimization

    cfg = OptimizeConfig.from_dict(config)
    prepared = ctx.prepared()
    plan = Plan(cfg, *prepared, estimate(cfg, *prepared)) if prepared else None
    result = run_optimization(cfg, ctx.store(), log_dir=ctx.job_dir / "gepa", job_id=ctx.job_id, run_id=ctx.run_id,
                              progress=ctx.emit, previous=ctx.previous, should_stop=ctx.should_stop,
                              lm_factory=ctx.lm_factory, plan=plan, on_run_created=ctx.set_run_id)
    return JobOutcome("succeeded" if result.status == "succeeded" else "cancelled", result.stop_reason or None)


def run_baseline(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    from core.baseline import run_baselines
    from core.models import ModelSpec
    from core.tasks import SampleSpec, TaskRef

    specs = [ModelSpec.from_dict(s) for s in config["specs"]]
    state: BaselineProgress = {"phase": "evaluating", "models": {s.name: {"done": 0, "total": 0} for s in specs}}
    last = [0.0]

    def on_record(spec: Any, done: int, total: int, rec: Any) -> None:
        state["models"][spec.name] = {"done": done, "total": total}
        if time.time() - last[0] > 0.25 or done == total:
            last[0] = time.time()
            ctx.emit(dict(state))

    outcomes = run_baselines(ctx.store(), TaskRef.from_dict(config["task_ref"]), SampleSpec.from_dict(config["sample"]),
                             specs, module=config.get("module", "predict"), threads=config.get("threads", 8),
                             cache=config.get("cache", True), on_record=on_record, should_stop=ctx.should_stop,
                             prepared=ctx.prepared())
    state["phase"] = "done"
    state["runs"] = {o.spec.name: {"run_id": o.run_id, "error": o.error} for o in outcomes}
    ctx.emit(dict(state))
    errors = [o.error if o.error.startswith(o.spec.name) else f"{o.spec.name}: {o.error}" for o in outcomes if o.error]
    if ctx.should_stop():
        return JobOutcome("cancelled", "; ".join(errors) or None)
    return JobOutcome("failed" if errors and len(errors) == len(specs) else "succeeded", "; ".join(errors) or None)


@dataclass(frozen=True)
class JobKind:
    """One kind of background job."""

    name: str
    run: Callable[[dict[str, Any], JobContext], JobOutcome]
    resumable: bool  # can go on from where an interrupted / cancelled / failed attempt stopped
    # Called once when the registry finds the job's process gone (kill -9, reboot): (JobInfo, JobManager).
    on_interrupted: Callable[[Any, Any], None] | None = None


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("optimize", run_optimize, resumable=True),
    JobKind("baseline", run_baseline, resumable=False),
)}
