"""The table of job kinds: what a job of each kind does, as ``run(config, ctx) -> JobOutcome``.

A new kind (another optimizer, a sweep) is one :class:`JobKind` entry in :data:`KINDS`; the registry,
the worker, the CLI and the pages read this table. ``ctx`` gives the job its progress sink, the one
cancel channel (``should_stop``), its folder, its stored plan and the settings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, TypedDict

from core.config.errors import StudioError
from core.config.settings import Settings
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


class ModelProgress(TypedDict, total=False):
    done: int
    total: int
    failed: int  # examples failed so far
    failed_by_kind: dict[str, int]
    retried: int  # calls that failed (429, 5xx, timeout...) and were tried again


class BaselineProgress(TypedDict, total=False):
    """What a baseline job reports (its progress.json)."""

    phase: str  # evaluating | done
    models: dict[str, ModelProgress]
    runs: dict[str, dict[str, Any]]  # model name -> {"run_id", "error", "degraded", "stopped_by"}


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
    state: BaselineProgress = {"phase": "evaluating", "models": {s.name: {"done": 0, "total": 0} for s in specs},
                               "runs": {name: {"run_id": rid, "error": None} for name, rid in earlier.items()}}
    last = [0.0]

    def on_run_created(spec: Any, run_id: str) -> None:
        state["runs"][spec.name] = {"run_id": run_id, "error": None}
        ctx.emit(dict(state))  # a killed job's runs are known to its resume

    def on_record(spec: Any, done: int, total: int, rec: Any) -> None:
        model = state["models"][spec.name]
        model.update(done=done, total=total)
        retried = max(0, int(rec.attempts or 1) - 1)  # provider errors that a retry got past
        if retried:
            model["retried"] = model.get("retried", 0) + retried
        if rec.outcome == "failed":
            by_kind = model.setdefault("failed_by_kind", {})
            by_kind[rec.error_kind or "other"] = by_kind.get(rec.error_kind or "other", 0) + 1
            model["failed"] = model.get("failed", 0) + 1
        if time.time() - last[0] > 0.25 or done == total or rec.outcome == "failed":
            last[0] = time.time()
            ctx.emit(dict(state))

    store, prepared = ctx.store(), ctx.prepared() or prepare(ref, sample, ctx.settings)
    outcomes = []
    for spec in specs:  # one model at a time, so a model's error shows while the next one runs
        if ctx.should_stop():
            break
        done = run_baselines(store, ref, sample, [spec], module=config.get("module", "predict"),
                             threads=config.get("threads", 8), cache=config.get("cache", True), on_record=on_record,
                             should_stop=ctx.should_stop, prepared=prepared, resume=earlier,
                             on_run_created=on_run_created)
        for o in done:
            if o.error:
                state["runs"][o.spec.name] = {"run_id": o.run_id or None, "error": o.error, "stopped_by": o.stopped_by}
                ctx.emit(dict(state))
        outcomes += done
    table = outcomes_table(outcomes)
    state["phase"] = "done"
    for o, row in zip(outcomes, table.to_dict("records"), strict=True):
        state["runs"][o.spec.name] = {"run_id": o.run_id or None, "error": o.error, "degraded": bool(row["degraded"]),
                                      "stopped_by": o.stopped_by}
        if row["n"]:
            state["models"][o.spec.name].update(failed=row["failed"], failed_by_kind=row["failed_by_kind"])
    ctx.emit(dict(state))
    errors = [o.error if o.error.startswith(o.spec.name) else f"{o.spec.name}: {o.error}" for o in outcomes if o.error]
    degraded = [f"{row['model']}: degraded, {row['failed']} of {row['n']} examples failed"
                for row in table.to_dict("records") if row["degraded"] and not row["error"]]
    notes = "; ".join(errors + degraded) or None
    if ctx.should_stop():
        return JobOutcome("cancelled", notes)
    if errors:  # as the command line's baseline: a model that failed fails the job (the others' runs are kept)
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


class NotebookPart(TypedDict, total=False):
    """One part of a notebook job: the optimization or a baseline (its examples done so far)."""

    model: str
    state: str  # running | succeeded | failed | cancelled
    done: int
    total: int
    failed: int
    failed_by_kind: dict[str, int]
    run_id: str | None
    error: str | None


class NotebookProgress(TypedDict, total=False):
    """What a notebook job reports: the optimization's progress (the optimize kind's keys, so the jobs table and the
    state line read it as theirs), each part's, the last status lines and, at the end, each side's accuracy."""

    parts: dict[str, NotebookPart]  # "optimization", "large", "frontier"
    status: list[str]
    reproduction: str  # the id tagged on its runs (core.presets.notebook.REPRODUCTION_TAG)
    measured: list[dict[str, Any]]  # at the end: core.presets.notebook.measured_frame's rows


def submit_notebook(manager: Any, plan: Any, models: Any, *, started_by: str | None = None) -> str:
    """Queue a notebook job that runs exactly ``plan`` (a core.presets.notebook plan) with ``models``; returns
    its id."""
    return manager.submit("notebook", f"Notebook: {plan.title}"[:200],
                          {"config": plan.config.to_dict(), "models": asdict(models)}, started_by=started_by,
                          plan={"task": plan.task.to_dict(), "splits": plan.splits.to_dict()})


class NotebookReporter:
    """A notebook job's progress, written whole on each change (one writer at a time: the progress file is replaced
    through one temporary name per process): the optimization's own progress, then each part's."""

    def __init__(self, ctx: JobContext, models: Any, n_test: int) -> None:
        self.ctx, self.lock, self.last = ctx, threading.RLock(), 0.0
        self.optimization: dict[str, Any] = {}
        self.parts: dict[str, NotebookPart] = {
            "optimization": {"model": models.student.name, "state": "running"},
            "large": {"model": models.large.name, "state": "running", "done": 0, "total": n_test},
            "frontier": {"model": models.frontier.name, "state": "running", "done": 0, "total": n_test}}
        self.status: list[str] = []
        self.extra: dict[str, Any] = {}

    def emit(self) -> None:
        with self.lock:
            self.ctx.emit({**self.optimization, "parts": {k: dict(v) for k, v in self.parts.items()},
                           "status": self.status[-8:], **self.extra})

    def on_optimization(self, progress: dict[str, Any]) -> None:
        with self.lock:
            self.optimization = dict(progress)
            self.emit()

    def on_record(self, side: str, done: int, total: int, rec: Any) -> None:
        with self.lock:
            part = self.parts[side]
            part.update(done=done, total=total)
            if rec.outcome == "failed":
                part["failed"] = part.get("failed", 0) + 1
                by_kind = part.setdefault("failed_by_kind", {})
                by_kind[rec.error_kind or "other"] = by_kind.get(rec.error_kind or "other", 0) + 1
            if time.time() - self.last > 0.25 or done == total or rec.outcome == "failed":
                self.last = time.time()
                self.emit()

    def on_run(self, part: str, run_id: str) -> None:
        with self.lock:
            if part in self.parts:
                self.parts[part]["run_id"] = run_id
                self.emit()  # a killed job's runs are known to on_interrupted

    def on_status(self, text: str) -> None:
        with self.lock:
            self.status.append(text)
            self.emit()

    def ended(self, states: dict[str, tuple[str, str | None]], **extra: Any) -> None:
        """Each part's final state and error (``states``); ``extra``: what the end adds (reproduction, measured)."""
        with self.lock:
            for name, (state, error) in states.items():
                self.parts[name].update(state=state, error=error)  # type: ignore[typeddict-item]
            self.extra.update(extra)
            self.emit()


def run_notebook_job(config: dict[str, Any], ctx: JobContext) -> JobOutcome:
    """The original notebook's experiment (``core.presets.notebook.run_notebook``): GEPA on the student in this job,
    as the optimize kind runs it, with the large and frontier baselines beside it. A dead provider fails the job;
    Cancel stops every part (the optimization after its current iteration). Not resumable: a resume would run the
    baselines again."""
    from core.lm.models import ModelSpec
    from core.optimize import OptimizeConfig, Plan, estimate
    from core.presets.notebook import NotebookModels, OptimizationOutcome, measured_frame, plan, run_notebook

    cfg = OptimizeConfig.from_dict(config["config"])
    models = NotebookModels(**{role: ModelSpec.from_dict(spec) for role, spec in config["models"].items()})
    prepared = ctx.prepared()
    the_plan = Plan(cfg, *prepared, estimate(cfg, *prepared)) if prepared else plan(cfg, ctx.settings)
    n = len(the_plan.splits.test)
    report, stop, done = NotebookReporter(ctx, models, n), threading.Event(), threading.Event()

    def optimize(stop_event: threading.Event) -> Any:
        run_ids: list[str] = []

        def created(run_id: str) -> None:
            run_ids.append(run_id)
            ctx.set_run_id(run_id)

        inner = replace(ctx, emit=report.on_optimization, should_stop=stop_event.is_set, set_run_id=created)
        try:
            outcome = run_optimize(config["config"], inner)
        except StudioError as exc:  # e.g. a key not set: this part failed, the baselines go on
            outcome = JobOutcome("failed", str(exc))
        return OptimizationOutcome(outcome.state, run_ids[-1] if run_ids else None, outcome.error, ctx.job_id)

    def watch_cancel() -> None:
        while not done.wait(0.5):
            if ctx.should_stop():
                return stop.set()

    threading.Thread(target=watch_cancel, name="notebook-job-cancel", daemon=True).start()
    try:
        out = run_notebook(the_plan, models, ctx.store(), optimize=optimize, stop=stop, lm_factory=ctx.lm_factory,
                           on_status=report.on_status, on_record=report.on_record, on_run=report.on_run,
                           job_id=ctx.job_id)
    except BaseException:  # a bug: the job fails with it (the worker records it), and no part reads as running
        report.ended({name: ("failed", None) for name, p in report.parts.items() if p.get("state") == "running"})
        raise
    finally:
        done.set()
    states = {"optimization": (out.job_state or "failed", out.errors.get("optimization"))}
    for side, spec in (("large", models.large), ("frontier", models.frontier)):
        complete = side in out.records and len(out.records[side]) == n  # type: ignore[index]
        error = out.errors.get(spec.name)
        states[side] = ("failed" if error else "succeeded" if complete else "cancelled", error)
    names = {"student_original": models.student.name, "student_optimized": models.student.name,
             "large": models.large.name, "frontier": models.frontier.name}
    report.ended(states, reproduction=out.reproduction,
                 measured=measured_frame(out.records, names).to_dict("records"))
    errors = [message if message.startswith(name) else f"{name}: {message}" for name, message in out.errors.items()
              if name != "optimization"]
    if stop.is_set():
        return JobOutcome("cancelled", "; ".join(errors) or "cancelled")
    if out.job_state == "cancelled" and not errors:  # the spending cap stopped GEPA (the reason says so)
        return JobOutcome("cancelled", out.errors["optimization"].removeprefix("cancelled: "))
    if out.job_state != "succeeded":
        errors.append(f"optimization {out.errors.get('optimization', out.job_state)}")
    if errors:
        return JobOutcome("failed", "; ".join(errors))
    degraded = report.optimization.get("degraded_reason")
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
)}
