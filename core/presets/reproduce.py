"""Running the original notebook's experiment (core.presets.notebook): the optimization with the large and frontier
baselines beside it, every run tagged as parts of one reproduction."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import pandas as pd

from core.config.errors import StudioError
from core.evaluation.baseline import EvalRun, run_evaluation
from core.evaluation.evaluate import EvalOptions
from core.lm.models import ModelSpec
from core.optimize import Plan
from core.presets.notebook import PRESET_TAG, REPRODUCTION_TAG, SIDE_TAG, START_TAG, NotebookModels, Side
from core.program.program import make_program
from core.tracking.store import TAG, RunStore


@dataclass
class NotebookRun:
    """What one reproduction left: the optimization's job and run, the run and records of each side, the errors."""

    reproduction: str = ""  # tagged on every run of it (REPRODUCTION_TAG)
    job_id: str | None = None
    job_state: str = ""
    optimization_run_id: str | None = None
    run_ids: dict[Side, str] = field(default_factory=dict)
    records: dict[Side, pd.DataFrame] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # part ("optimization", a model name) -> message

    @property
    def ok(self) -> bool:
        return not self.errors and self.job_state == "succeeded"


@dataclass(frozen=True)
class OptimizationOutcome:
    """How the optimization part ended: its state (succeeded, failed, cancelled, interrupted), run, error, job."""

    state: str
    run_id: str | None = None
    error: str | None = None
    job_id: str | None = None


OptimizationPart = Callable[[threading.Event], OptimizationOutcome]  # GEPA, then before/after; stops on the event


def job_optimization(manager: Any, plan: Plan, *, execute: Callable[[str], Any] | None = None,
                     started_by: str | None = None, poll_s: float = 0.5) -> OptimizationPart:
    """The optimization as a job of ``manager`` (a JobManager: core.jobs imports this module), run here by
    ``execute(job_id) -> JobInfo`` or else started by the manager and waited for; ``stop`` cancels the job."""
    def part(stop: threading.Event) -> OptimizationOutcome:
        job_id = manager.submit_optimization(plan.config, start=execute is None, plan=plan, started_by=started_by)
        done = threading.Event()

        def cancel_on_stop() -> None:
            while not done.wait(poll_s):
                if stop.is_set():
                    return manager.cancel(job_id)

        threading.Thread(target=cancel_on_stop, name="notebook-cancel", daemon=True).start()
        try:
            job = execute(job_id) if execute else manager.wait(job_id, timeout=float("inf"), poll=poll_s)
        finally:
            done.set()
        return OptimizationOutcome(job.state, job.run_id, job.error, job_id)

    return part


def _quiet(*_: Any) -> None:
    """A hook that listens to nothing."""


@dataclass
class NotebookHooks:
    """How a caller drives and follows a reproduction: the optimization part (by default an optimize job of the
    manager: :func:`job_optimization`), the event that stops every part, and what it hears: status lines, each
    baseline example (``on_record(side, done, total, record)``) and each run once it exists (``on_run(part, run_id)``).
    """

    optimize: OptimizationPart | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    on_status: Callable[[str], None] = _quiet
    on_record: Callable[[Side, int, int, Any], None] | None = None
    on_run: Callable[[str, str], None] = _quiet


def run_notebook(plan: Plan, models: NotebookModels, store: RunStore, hooks: NotebookHooks | None = None, *,
                 manager: Any = None, lm_factory: Callable[[ModelSpec], Any] | None = None,
                 job_id: str | None = None) -> NotebookRun:
    """The optimization (``hooks.optimize``, by default an optimize job of ``manager``) while the large and frontier
    baselines run beside it: the notebook's calls at once, not one after another. The student's "before" is the
    optimization's evaluation of the starting program, so no call is made twice. Setting ``hooks.stop`` cancels the
    optimization after its current GEPA iteration and stops the baselines (they keep their records). ``job_id`` (a
    notebook job's) is tagged on the baselines and names the reproduction."""
    hooks = hooks or NotebookHooks()
    optimize = hooks.optimize or job_optimization(manager, plan, started_by=store.started_by)
    reproduction = _Reproduction(plan, store, hooks, lm_factory, job_id)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="notebook") as pool:
        parts = [pool.submit(reproduction.optimization, optimize),
                 pool.submit(reproduction.baseline, "large", models.large),
                 pool.submit(reproduction.baseline, "frontier", models.frontier)]
        try:
            for part in parts:
                part.result()
        except KeyboardInterrupt:  # Ctrl-C: stop every part, keep what each recorded, then leave
            hooks.stop.set()
            for part in parts:
                part.result()
            raise
    return reproduction.out


class _Reproduction:
    """One reproduction as it runs: its parts (each in its own thread) write their runs, records and errors into
    ``out`` under one lock."""

    def __init__(self, plan: Plan, store: RunStore, hooks: NotebookHooks,
                 lm_factory: Callable[[ModelSpec], Any] | None, job_id: str | None) -> None:
        self.plan, self.store, self.hooks, self.lm_factory, self.job_id = plan, store, hooks, lm_factory, job_id
        self.out = NotebookRun(reproduction=job_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])
        self.lock = threading.Lock()
        self.tags = {PRESET_TAG: "notebook", START_TAG: plan.config.start, REPRODUCTION_TAG: self.out.reproduction}

    def _created(self, side: Side, run_id: str) -> None:
        with self.lock:
            self.out.run_ids[side] = run_id
        self.hooks.on_run(side, run_id)

    def baseline(self, side: Side, spec: ModelSpec) -> None:
        """``spec`` on the plan's test split, as the notebook's baseline of ``side``; its error is kept, not raised."""
        config, task, say, on_record = self.plan.config, self.plan.task, self.hooks.on_status, self.hooks.on_record
        program = make_program(task, config.module, config.instruction or None, start=config.start)
        say(f"baseline {spec.name}: {len(self.plan.splits.test)} test examples")
        try:
            _, result = run_evaluation(
                self.store, task, spec, program, self.plan.splits.test,
                EvalRun(kind="baseline", program_label="original", module=config.module, sample=config.sample,
                        task_ref=config.task_ref, job_id=self.job_id, extra_tags={**self.tags, SIDE_TAG: side},
                        on_run_created=lambda run_id: self._created(side, run_id)),
                EvalOptions(threads=config.threads, cache=config.cache,
                            lm=self.lm_factory(spec) if self.lm_factory else None,
                            on_record=partial(on_record, side) if on_record else None,
                            should_stop=self.hooks.stop.is_set))
        except StudioError as exc:
            with self.lock:
                self.out.errors[spec.name] = str(exc)
            say(f"baseline {spec.name} failed: {exc}")
            return
        with self.lock:
            self.out.records[side] = result.records
        say(f"baseline {spec.name}: accuracy {result.metrics.get('accuracy', float('nan')):.1%}")

    def optimization(self, optimize: OptimizationPart) -> None:
        """The optimization part; its run and its before / after test evaluations join the reproduction."""
        say, out = self.hooks.on_status, self.out
        say(f"optimization: {self.plan.title}")
        outcome = optimize(self.hooks.stop)
        out.job_id, out.job_state, out.optimization_run_id = outcome.job_id, outcome.state, outcome.run_id
        if outcome.state != "succeeded":
            out.errors["optimization"] = f"{outcome.state}: {outcome.error}" if outcome.error else outcome.state
        if outcome.run_id:
            self._join_optimization(outcome.run_id)
        say(f"optimization{f' (job {outcome.job_id})' if outcome.job_id else ''}: {outcome.state}")

    def _join_optimization(self, run_id: str) -> None:
        """Tag the optimization's run and its test evaluations as this reproduction's; read their records."""
        self.store.set_tags(run_id, {**self.tags, SIDE_TAG: "optimization"})  # its params have "start" already
        self.hooks.on_run("optimization", run_id)
        run_tags = self.store.get_run(run_id).data.tags
        side: Side
        for side in ("student_original", "student_optimized"):
            eval_id = run_tags.get(f"{TAG}{side.removeprefix('student_')}_eval_run_id")
            if eval_id:
                self.store.set_tags(eval_id, {**self.tags, SIDE_TAG: side})
                records = self.store.read_csv(eval_id, "records.csv")
                with self.lock:
                    self.out.run_ids[side], self.out.records[side] = eval_id, records
                self.hooks.on_run(side, eval_id)
