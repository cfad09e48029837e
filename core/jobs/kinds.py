"""The table of job kinds: what a job of each kind does, as ``run(config, ctx) -> JobOutcome``.

A new kind (a sweep, a repeat) is one :class:`JobKind` entry in :data:`KINDS`; the registry, the worker, the CLI
and the pages read this table. Another optimizer is no new kind: it is one entry of the optimizer table
(core.optimize.optimizers.OPTIMIZERS), run by the ``optimize`` kind. ``ctx`` gives the job its progress sink, the one
cancel channel (``should_stop``), its folder, its stored plan and the settings.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal

from core.config.errors import StudioError
from core.config.settings import Settings
from core.jobs.progress import BaselineReporter, NotebookReporter
from core.jobs.sweeps import SweepGroup, run_sweep
from core.tasks import Splits, Task
from core.tracking.store import RunStore

Outcome = Literal["succeeded", "failed", "cancelled"]
DEGRADED_PREFIX = "degraded: "  # the note of a job that succeeded degraded starts so (the CLI exits 3 on it)


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
    started_by: str | None = None  # who submitted the job (tagged on every run it starts)

    def store(self) -> RunStore:
        return RunStore(self.settings, started_by=self.started_by)

    def prepared(self) -> tuple[Task, Splits] | None:
        """The task and splits the job was planned with (None for a job stored without a plan)."""
        if not self.plan:
            return None
        return Task.from_dict(self.plan["task"]), Splits.from_dict(self.plan["splits"])


def run_optimize(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    from core.optimize import OptimizeConfig, Plan, estimate, run_optimization

    cfg = OptimizeConfig.from_dict(config)
    prepared = ctx.prepared()
    plan = Plan(cfg, *prepared, estimate(cfg, *prepared)) if prepared else None
    result = run_optimization(cfg, ctx.store(), log_dir=ctx.job_dir / "gepa", job_id=ctx.job_id, run_id=ctx.run_id,
                              progress=ctx.emit, previous=ctx.previous, should_stop=ctx.should_stop,
                              lm_factory=ctx.lm_factory, plan=plan, on_run_created=ctx.set_run_id)
    if result.status == "failed":  # a dead provider: the message names its error (no traceback: it is not a bug)
        return JobOutcome("failed", result.error)
    if result.status == "cancelled":
        return JobOutcome("cancelled", result.stop_reason or None)
    return JobOutcome("succeeded", f"{DEGRADED_PREFIX}{result.degraded_reason}" if result.degraded_reason else None)


def baseline_config(task: Any, task_ref: Any, sample: Any, specs: list[Any], options: Any) -> dict[str, Any]:
    """What a baseline job runs (its stored config): the task, sample, models and how; a task scored by a rubric
    judge carries the judge's model (refused without one)."""
    from core.evaluation.scorer import task_scorer

    config = {"task_ref": task_ref.to_dict(), "sample": sample.to_dict(), "specs": [s.to_dict() for s in specs],
              "module": options.get("module", "predict"), "threads": options.get("threads", 8),
              "cache": options.get("cache", True)}
    if task.metric == "judge":
        task_scorer(task, options.get("judge"))  # ConfigError without one
        config["judge"] = options["judge"].to_dict()
    return config


def run_baseline(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    """Each model on the planned test split. A resumed job goes on with its models' runs (``previous["runs"]``),
    reusing their finished records; progress carries, as they happen, failed examples (by kind), retried calls
    and a model's error once its provider is given up on; at the end, each run's degraded flag."""
    from core.evaluation.baseline import outcomes_table, run_baselines
    from core.lm.models import ModelSpec
    from core.tasks import SampleSpec, TaskRef, prepare

    specs = [ModelSpec.from_dict(s) for s in config["specs"]]
    ref, sample = TaskRef.from_dict(config["task_ref"]), SampleSpec.from_dict(config["sample"])
    earlier = {name: r["run_id"] for name, r in (ctx.previous.get("runs") or {}).items()
               if isinstance(r, dict) and r.get("run_id")}
    report = BaselineReporter(ctx.emit, [s.name for s in specs], earlier)
    store, prepared = ctx.store(), ctx.prepared() or prepare(ref, sample, ctx.settings)
    outcomes = []
    for spec in specs:  # one model at a time, so a model's error shows while the next one runs
        if ctx.should_stop():
            break
        done = run_baselines(store, ref, sample, [spec], module=config.get("module", "predict"),
                             threads=config.get("threads", 8), cache=config.get("cache", True),
                             on_record=report.on_record, should_stop=ctx.should_stop, prepared=prepared,
                             resume=earlier, on_run_created=report.on_run_created,
                             judge=ModelSpec.from_dict(config["judge"]) if config.get("judge") else None)
        for o in done:
            report.on_outcome(o)
        outcomes += done
    rows = outcomes_table(outcomes).to_dict("records")
    report.ended(outcomes, rows)
    return _baseline_outcome(outcomes, rows, stopped=ctx.should_stop())


def _baseline_outcome(outcomes: list[Any], rows: list[dict[str, Any]], *, stopped: bool) -> JobOutcome:
    """How a baseline job ends: cancelled when stopped, failed when a model failed (the others' runs are kept, as the
    command line's baseline), else succeeded (degraded when a model's failed examples say so)."""
    errors = [o.error if o.error.startswith(o.spec.name) else f"{o.spec.name}: {o.error}" for o in outcomes if o.error]
    degraded = [f"{row['model']}: degraded, {row['failed']} of {row['n']} examples failed"
                for row in rows if row["degraded"] and not row["error"]]
    notes = "; ".join(errors + degraded) or None
    if stopped:
        return JobOutcome("cancelled", notes)
    if errors:
        return JobOutcome("failed", notes)
    return JobOutcome("succeeded", f"{DEGRADED_PREFIX}{notes}" if notes else None)


def run_finish(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    """The test evaluations of a stopped optimization (``config["run_id"]``): original and best program on its
    planned test split; the run keeps its status and stop reason. A dead provider fails the job."""
    from core.optimize import finish_optimization, plan_finish

    ctx.set_run_id(config["run_id"])  # the optimization it finishes: the pages find this job by it
    store = ctx.store()
    plan = plan_finish(store, config["run_id"], ctx.prepared())
    result = finish_optimization(store, plan, job_id=ctx.job_id, progress=ctx.emit, should_stop=ctx.should_stop,
                                 lm_factory=ctx.lm_factory)
    if result.status == "failed":
        return JobOutcome("failed", result.error)
    if result.status == "cancelled":
        return JobOutcome("cancelled", "cancelled")
    return JobOutcome("succeeded", f"{DEGRADED_PREFIX}{result.degraded_reason}" if result.degraded_reason else None)


def submit_notebook(manager: Any, plan: Any, models: Any, *, started_by: str | None = None) -> str:
    """Queue a notebook job that runs exactly ``plan`` (a core.presets.notebook plan) with ``models``; returns
    its id."""
    return manager.submit("notebook", f"Notebook: {plan.title}"[:200],
                          {"config": plan.config.to_dict(), "models": asdict(models)}, started_by=started_by,
                          plan={"task": plan.task.to_dict(), "splits": plan.splits.to_dict()})


def run_notebook_job(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    """The original notebook's experiment (``core.presets.reproduce.run_notebook``): GEPA on the student in this job,
    as the optimize kind runs it, with the large and frontier baselines beside it. A dead provider fails the job;
    Cancel stops every part (the optimization after its current iteration). Not resumable: a resume would run the
    baselines again."""
    from core.lm.models import ModelSpec
    from core.optimize import OptimizeConfig, Plan, estimate
    from core.presets.notebook import NotebookModels, measured_frame, plan
    from core.presets.reproduce import NotebookHooks, run_notebook

    cfg = OptimizeConfig.from_dict(config["config"])
    models = NotebookModels(**{role: ModelSpec.from_dict(spec) for role, spec in config["models"].items()})
    prepared = ctx.prepared()
    the_plan = Plan(cfg, *prepared, estimate(cfg, *prepared)) if prepared else plan(cfg, ctx.settings)
    n = len(the_plan.splits.test)
    report, stop, done = NotebookReporter(ctx.emit, models, n), threading.Event(), threading.Event()
    threading.Thread(target=_relay_cancel, args=(ctx, stop, done), name="notebook-job-cancel", daemon=True).start()
    hooks = NotebookHooks(optimize=_notebook_optimizer(config["config"], ctx, report), stop=stop,
                          on_status=report.on_status, on_record=report.on_record, on_run=report.on_run)
    try:
        out = run_notebook(the_plan, models, ctx.store(), hooks, lm_factory=ctx.lm_factory, job_id=ctx.job_id)
    except BaseException:  # a bug: the job fails with it (the worker records it), and no part reads as running
        report.ended({name: ("failed", None) for name, p in report.parts.items() if p.get("state") == "running"})
        raise
    finally:
        done.set()
    names = {"student_original": models.student.name, "student_optimized": models.student.name,
             "large": models.large.name, "frontier": models.frontier.name}
    report.ended(_notebook_states(out, models, n), reproduction=out.reproduction,
                 measured=measured_frame(out.records, names).to_dict("records"))
    return _notebook_outcome(out, stopped=stop.is_set(), degraded=report.optimization.get("degraded_reason"))


def _relay_cancel(ctx: JobContext, stop: threading.Event, done: threading.Event) -> None:
    """Set ``stop`` once the job is cancelled (polled every half second until ``done``)."""
    while not done.wait(0.5):
        if ctx.should_stop():
            return stop.set()


def _notebook_optimizer(config: dict[str, Any], ctx: JobContext, report: NotebookReporter) -> Callable[..., Any]:
    """The notebook's optimization part: the optimize kind in this job, reporting through ``report``."""
    from core.presets.reproduce import OptimizationOutcome

    def optimize(stop_event: threading.Event) -> Any:
        run_ids: list[str] = []

        def created(run_id: str) -> None:
            run_ids.append(run_id)
            ctx.set_run_id(run_id)

        inner = replace(ctx, emit=report.on_optimization, should_stop=stop_event.is_set, set_run_id=created)
        try:
            outcome = run_optimize(config, inner)
        except StudioError as exc:  # e.g. a key not set: this part failed, the baselines go on
            outcome = JobOutcome("failed", str(exc))
        return OptimizationOutcome(outcome.state, run_ids[-1] if run_ids else None, outcome.error, ctx.job_id)

    return optimize


def _notebook_states(out: Any, models: Any, n: int) -> dict[str, tuple[str, str | None]]:
    """Each part's final state and error: a baseline with all ``n`` records succeeded, one with fewer was cancelled."""
    states = {"optimization": (out.job_state or "failed", out.errors.get("optimization"))}
    for side, spec in (("large", models.large), ("frontier", models.frontier)):
        complete = side in out.records and len(out.records[side]) == n
        error = out.errors.get(spec.name)
        states[side] = ("failed" if error else "succeeded" if complete else "cancelled", error)
    return states


def _notebook_outcome(out: Any, *, stopped: bool, degraded: str | None) -> JobOutcome:
    """How a notebook job ends: cancelled when stopped (or when the spending cap stopped GEPA), failed when a part
    failed, else succeeded (degraded when the optimization was)."""
    errors = [message if message.startswith(name) else f"{name}: {message}" for name, message in out.errors.items()
              if name != "optimization"]
    if stopped:
        return JobOutcome("cancelled", "; ".join(errors) or "cancelled")
    if out.job_state == "cancelled" and not errors:  # the spending cap stopped GEPA (the reason says so)
        return JobOutcome("cancelled", out.errors["optimization"].removeprefix("cancelled: "))
    if out.job_state != "succeeded":
        errors.append(f"optimization {out.errors.get('optimization', out.job_state)}")
    if errors:
        return JobOutcome("failed", "; ".join(errors))
    return JobOutcome("succeeded", f"{DEGRADED_PREFIX}{degraded}" if degraded else None)


def close_baseline_runs(job: Any, manager: Any) -> None:
    """A baseline job's process is gone: its RUNNING runs end KILLED, tagged interrupted (they can be resumed)."""
    from core.evaluation.baseline import close_interrupted

    store = RunStore(manager.settings)
    ids = [str(r) for r in store.list_runs(job_id=job.id)["run_id"]]
    ids += [r["run_id"] for r in (manager.progress(job.id).get("runs") or {}).values()
            if isinstance(r, dict) and r.get("run_id") and r["run_id"] not in ids]
    close_interrupted(store, ids)


def close_optimization_runs(job: Any, manager: Any) -> None:
    """An optimization's process is gone: its RUNNING test evaluations and the run itself end KILLED, tagged
    interrupted (a resume re-opens the run and goes on from GEPA's last saved state)."""
    from core.evaluation.baseline import close_interrupted
    from core.optimize import close_orphan_evaluations

    if job.run_id:
        store = RunStore(manager.settings)
        close_orphan_evaluations(store, job.run_id)
        close_interrupted(store, [job.run_id])


def close_finish_runs(job: Any, manager: Any) -> None:
    """A finish job's process is gone: its RUNNING test evaluations end KILLED, tagged interrupted (the
    optimization itself keeps its status; finish it again)."""
    from core.optimize import close_orphan_evaluations

    if job.run_id:
        close_orphan_evaluations(RunStore(manager.settings), job.run_id)


def close_notebook_runs(job: Any, manager: Any) -> None:
    """A notebook job's process is gone: its optimization's runs and its baselines' RUNNING runs end KILLED."""
    close_optimization_runs(job, manager)
    close_baseline_runs(job, manager)  # the baselines carry the job's id


@dataclass(frozen=True)
class JobKind:
    """One kind of background job."""

    name: str
    run: Callable[[dict[str, Any], JobContext], JobOutcome]
    resumable: bool  # can go on from where an interrupted / cancelled / failed attempt stopped
    # Called once when the registry finds the job's process gone (kill -9, reboot): (JobInfo, JobManager).
    on_interrupted: Callable[[Any, Any], None] | None = None
    # A group job (a sweep) runs no process: its children are jobs of other kinds. ``group`` is then an object with
    # ``watch(manager)`` (settle group jobs' states from their children's; called at the end of every reap),
    # ``cancel(job, manager)``, ``resume(job, manager, start)`` and ``kill(job, manager)``.
    group: Any = None


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("optimize", run_optimize, resumable=True, on_interrupted=close_optimization_runs),
    JobKind("baseline", run_baseline, resumable=True, on_interrupted=close_baseline_runs),
    JobKind("finish", run_finish, resumable=False, on_interrupted=close_finish_runs),
    JobKind("notebook", run_notebook_job, resumable=False, on_interrupted=close_notebook_runs),
    JobKind("sweep", run_sweep, resumable=True, group=SweepGroup()),  # runs no process: its optimize children do
    JobKind("repeat", run_sweep, resumable=True, group=SweepGroup("repeat")),  # one optimization, N seeds: a group too
)}
