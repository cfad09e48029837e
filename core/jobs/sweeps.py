"""Sweeps: a grid of optimizations (students × optimizers × seeds × budgets) as one job.

A sweep is a group job (kind ``sweep``): it runs no process of its own. Submitting one plans every cell up front
(one task and one set of splits shared by all, so the cells are comparable), queues one ``optimize`` child per cell
(each child's config carries ``sweep``: the parent's id, so every MLflow run it makes is tagged ``studio.sweep``) and
lets the backend's ``max_jobs`` queue the rest. The parent's state follows its children (:class:`SweepGroup`'s
``watch``, called at the end of every reap); one cancel, one resume and one kill reach every child.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.config.errors import ConfigError, JobError

logger = logging.getLogger(__name__)

MAX_SWEEP_JOBS = 64  # each cell is a whole optimization: more is a budget mistake, not a wish
ACTIVE_STATES = ("queued", "running")  # a cell still to end (interrupted: ended, not done; resumable)
JobInfo = Any  # core.jobs.types.JobInfo (not imported: core.jobs.types reads this table through core.jobs.kinds)
BUDGET_HELP = "Use light, medium or heavy, calls:N (N metric calls) or evals:N (N full evaluations / candidates)."


def budget_fields(budget: str) -> dict[str, Any]:
    """A grid budget as OptimizeConfig fields: ``light``/``medium``/``heavy``, ``calls:N`` or ``evals:N``."""
    text = str(budget).strip().lower()
    if text in ("light", "medium", "heavy"):
        return {"auto": text, "max_metric_calls": None, "max_full_evals": None}
    head, _, number = text.partition(":")
    if head in ("calls", "evals") and number.strip().isdigit() and int(number) > 0:
        key = "max_metric_calls" if head == "calls" else "max_full_evals"
        return {"auto": None, "max_metric_calls": None, "max_full_evals": None, key: int(number)}
    raise ConfigError(f"Unknown budget {budget!r} in the sweep.", BUDGET_HELP)


@dataclass(frozen=True)
class SweepGrid:
    """The axes of a sweep; every combination is one optimization (a cell)."""

    students: list[str]  # model names from the catalog
    optimizers: list[str]  # names from core.optimize.optimizers.OPTIMIZERS
    seeds: list[int] = field(default_factory=lambda: [0])
    budgets: list[str] = field(default_factory=lambda: ["light"])

    def __post_init__(self) -> None:
        for axis in ("students", "optimizers", "seeds", "budgets"):
            values = list(getattr(self, axis))
            if not values:
                raise ConfigError(f"The sweep has no {axis}.", f"Pick at least one of the {axis}.")
            if len(set(map(str, values))) != len(values):
                raise ConfigError(f"The sweep names some {axis} twice: {', '.join(map(str, values))}.",
                                  "Give each value once.")
            object.__setattr__(self, axis, values)
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(f"Seeds must be whole numbers from 0: got {self.seeds}.", "Give seeds such as 0, 1, 2.")
        for budget in self.budgets:
            budget_fields(budget)
        if self.size > MAX_SWEEP_JOBS:
            raise ConfigError(f"The sweep has {self.size} cells ({self.shape()}); at most {MAX_SWEEP_JOBS} run as "
                              "one sweep.",
                              "Drop some students, optimizers, seeds or budgets, or split it into several sweeps.")

    @property
    def size(self) -> int:
        return len(self.students) * len(self.optimizers) * len(self.seeds) * len(self.budgets)

    def shape(self) -> str:
        return (f"{len(self.students)} students × {len(self.optimizers)} optimizers × {len(self.seeds)} seeds × "
                f"{len(self.budgets)} budgets")

    def cells(self) -> list[dict[str, Any]]:
        """Every combination, in a stable order (student, optimizer, budget, seed)."""
        return [{"student": s, "optimizer": o, "budget": b, "seed": seed}
                for s in self.students for o in self.optimizers for b in self.budgets for seed in self.seeds]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SweepGrid":
        return cls(**{k: list(d[k]) for k in ("students", "optimizers", "seeds", "budgets") if k in d})


def cell_label(cell: dict[str, Any]) -> str:
    """``student · optimizer · budget · seed N``: how a cell reads on the pages and in the CLI."""
    return f"{cell['student']} · {cell['optimizer']} · {cell['budget']} · seed {cell['seed']}"


def expand(base: Any, grid: SweepGrid, catalog: Any) -> list[tuple[dict[str, Any], Any]]:
    """Each cell with its OptimizeConfig (built here, so each config's own checks speak, naming the cell)."""
    from core.optimize import OPTIMIZERS

    unknown = [o for o in grid.optimizers if o not in OPTIMIZERS]
    if unknown:
        raise ConfigError(f"Unknown optimizer {', '.join(map(repr, unknown))} in the sweep.",
                          f"Use one of: {', '.join(OPTIMIZERS)}.")
    students = {name: catalog.get(name) for name in grid.students}  # ModelError names an unknown model
    if "own" in grid.optimizers and len(grid.seeds) > 1:
        raise ConfigError("Your own prompt has no seed: every seed of it would give the same numbers.",
                          "Sweep your own prompt with one seed, or leave it out of a sweep with several seeds.")
    out = []
    for cell in grid.cells():
        try:
            config = replace(base, student=students[cell["student"]], optimizer=cell["optimizer"], seed=cell["seed"],
                             sweep=None, **budget_fields(cell["budget"]))
        except ConfigError as exc:
            raise ConfigError(f"Sweep cell {cell_label(cell)}: {exc.message}", exc.hint) from None
        out.append((cell, config))
    return out


def plan_sweep(manager: Any, base: Any, grid: SweepGrid, catalog: Any) -> list[tuple[dict[str, Any], Any]]:
    """Each cell with its Plan, on one task and one set of splits (loaded once); ConfigError names a bad cell."""
    from core.optimize import Plan, estimate
    from core.tasks import prepare

    cells = expand(base, grid, catalog)
    task, splits = prepare(base.task_ref, base.sample, manager.settings)
    planned = []
    for cell, config in cells:
        try:
            config.check_splits(splits)
        except ConfigError as exc:
            raise ConfigError(f"Sweep cell {cell_label(cell)}: {exc.message}", exc.hint) from None
        planned.append((cell, Plan(config, task, splits, estimate(config, task, splits))))
    return planned


def submit_sweep(manager: Any, base: Any, grid: SweepGrid, catalog: Any, *, started_by: str | None = None,
                 title: str | None = None, planned: list[tuple[dict[str, Any], Any]] | None = None) -> str:
    """Queue a sweep: one parent job of kind ``sweep`` and one ``optimize`` child per grid cell (planned here, unless
    ``planned`` is given, before anything is queued); returns the sweep's job id."""
    planned = planned or plan_sweep(manager, base, grid, catalog)
    first = planned[0][1]
    title = title or f"Sweep · {first.task.name} · {len(planned)} cells ({grid.shape()})"
    stored = {"task": first.task.to_dict(), "splits": first.splits.to_dict()}
    sweep_id = manager.submit("sweep", title[:200], {"grid": grid.to_dict(), "base": base.to_dict(), "children": []},
                              start=False, started_by=started_by)
    children: list[str] = []
    try:
        for cell, plan in planned:
            config = replace(plan.config, sweep=sweep_id)
            children.append(manager.submit("optimize", f"{plan.title} · seed {cell['seed']} · sweep"[:200],
                                           config.to_dict(), start=False, plan=stored, started_by=started_by))
        _set_children(manager, sweep_id, grid, base, planned, children)
    except BaseException as exc:
        abandon(manager, sweep_id, children, "sweep", exc)
        raise
    launch(manager, sweep_id)
    logger.info("queued sweep %s: %d cells (%s)", sweep_id, len(children), grid.shape())
    manager.schedule()
    return sweep_id


def abandon(manager: Any, group_id: str, children: list[str], what: str, exc: BaseException) -> None:
    """Half a sweep (or repeat, ``what``) is none: its children queued so far cancelled, the group failed."""
    for child in children:
        manager.finish(child, "cancelled", f"its {what} could not be queued")
    manager.finish(group_id, "failed", f"could not queue the {what}: {exc}")


def launch(manager: Any, group_id: str) -> None:
    """A group job whose children are all queued: running, with its first aggregate progress."""
    manager.mark_running(group_id)
    manager.write_progress(group_id, sweep_progress(manager, group_id))


def _set_children(manager: Any, sweep_id: str, grid: SweepGrid, base: Any, planned: list[Any],
                  children: list[str]) -> None:
    """Record the children (and each one's cell) in the sweep's config."""
    manager.set_config(sweep_id, {"grid": grid.to_dict(), "base": base.to_dict(), "children": children,
                                  "cells": {job_id: cell for job_id, (cell, _) in zip(children, planned, strict=True)}})


def children_of(sweep: JobInfo, jobs: list[JobInfo]) -> list[JobInfo]:
    """The sweep's child jobs, in cell order (those recorded, else those whose config names the sweep)."""
    ids = list(sweep.config.get("children") or [])
    by_id = {j.id: j for j in jobs}
    if ids:
        return [by_id[i] for i in ids if i in by_id]
    return sorted((j for j in jobs if j.config.get("sweep") == sweep.id), key=lambda j: j.created)


def _cell(sweep: JobInfo, child: JobInfo) -> dict[str, Any]:
    cell = (sweep.config.get("cells") or {}).get(child.id)
    if cell:
        return dict(cell)
    c = child.config
    budget = c.get("auto") or (f"calls:{c['max_metric_calls']}" if c.get("max_metric_calls")
                               else f"evals:{c.get('max_full_evals')}")
    return {"student": (c.get("student") or {}).get("name"), "optimizer": c.get("optimizer"), "budget": budget,
            "seed": c.get("seed")}


def sweep_progress(manager: Any, sweep_id: str, jobs: list[JobInfo] | None = None) -> dict[str, Any]:
    """The sweep's aggregate, from its children's progress: counts by state, cells done / total, metric calls and
    cost summed, the best cell so far (by best validation score) and one row per cell."""
    jobs = jobs if jobs is not None else manager.list(reap=False)
    sweep = next((j for j in jobs if j.id == sweep_id), None)
    if sweep is None:
        raise JobError(f"No sweep {sweep_id!r}.", "List jobs with `python -m core jobs`.")
    by_state: dict[str, int] = {}
    rows, calls, cost, best = [], 0, 0.0, None
    for child in children_of(sweep, jobs):
        p = manager.progress(child.id)
        by_state[child.state] = by_state.get(child.state, 0) + 1
        used, spent, score = p.get("metric_calls_used"), p.get("total_cost_usd"), p.get("best_val_score")
        calls += int(used or 0)
        cost += float(spent or 0.0)
        row = {"job_id": child.id, **_cell(sweep, child), "state": child.state, "metric_calls": used,
               "metric_calls_budget": p.get("metric_calls_budget"), "best_val_score": score, "cost_usd": spent,
               "run_id": child.run_id, "error": child.error}
        rows.append(row)
        if score is not None and (best is None or score > best["best_val_score"]):
            best = {k: row[k] for k in ("job_id", "student", "optimizer", "budget", "seed", "best_val_score", "run_id")}
    done = sum(n for s, n in by_state.items() if s not in (*ACTIVE_STATES, "interrupted"))
    return {"phase": "sweep", "cells_done": done, "cells_total": len(rows), "by_state": by_state,
            "metric_calls_used": calls, "total_cost_usd": cost, "best": best,
            "best_val_score": best["best_val_score"] if best else None, "cells": rows}


def _shorten(text: str | None, limit: int = 160) -> str:
    text = " ".join((text or "no error recorded").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def settle(children: list[JobInfo], sweep: JobInfo) -> tuple[str, str | None] | None:
    """The sweep's end state (and error) from its children's, or None while any child is queued or running."""
    states = [c.state for c in children]
    if not children or any(s in ACTIVE_STATES for s in states):
        return None
    if all(s == "succeeded" for s in states):
        return "succeeded", None
    for state in ("interrupted", "failed"):
        hit = [c for c in children if c.state == state]
        if hit:
            detail = "; ".join(f"{_cell_name(sweep, c)}: {_shorten(c.error)}" for c in hit[:3])
            more = f"; and {len(hit) - 3} more" if len(hit) > 3 else ""
            return state, f"{len(hit)} of {len(children)} cells {state}: {detail}{more}"
    n = states.count("cancelled")
    return "cancelled", f"{n} of {len(children)} cells cancelled"


def _cell_name(sweep: JobInfo, child: JobInfo) -> str:
    return cell_label(_cell(sweep, child))


class SweepGroup:
    """A group kind's behaviour (a ``sweep``'s, a ``repeat``'s: core.jobs.repeats): its state follows its children;
    cancel, resume and kill reach them."""

    def __init__(self, kind: str = "sweep") -> None:
        self.kind = kind

    def watch(self, manager: Any) -> None:
        """Settle every group of this kind from its children: running while any child is queued or running (its
        progress rewritten), else its end state; an ended group whose child was resumed (or ended late) follows it."""
        jobs = manager.list(reap=False)
        for sweep in jobs:
            if sweep.kind == self.kind and sweep.state != "queued":  # queued: still being submitted
                self._update(manager, sweep, jobs)

    @staticmethod
    def _update(manager: Any, sweep: JobInfo, jobs: list[JobInfo]) -> None:
        ended = settle(children_of(sweep, jobs), sweep)
        if ended is None:
            if sweep.state != "running":
                manager.mark_running(sweep.id)
        elif ended == (sweep.state, sweep.error):
            return  # settled before: nothing to write
        manager.write_progress(sweep.id, sweep_progress(manager, sweep.id, jobs))
        if ended is not None:
            manager.finish(sweep.id, ended[0], ended[1])

    def cancel(self, job: JobInfo, manager: Any) -> None:
        for child in children_of(job, manager.list(reap=False)):
            if child.state in (*ACTIVE_STATES, "interrupted"):
                manager.cancel(child.id)
        jobs = manager.list(reap=False)
        self._update(manager, next(j for j in jobs if j.id == job.id), jobs)

    def resume(self, job: JobInfo, manager: Any, start: bool) -> None:
        children = children_of(job, manager.list(reap=False))
        again = [c for c in children if c.resumable]
        for child in again:
            manager.resume(child.id, start=False)
        manager.mark_running(job.id)  # after the children are queued: a reap in between would settle it again
        logger.info("resumed sweep %s: %d of %d cells queued again", job.id, len(again), len(children))
        if start:
            manager.schedule()

    def kill(self, job: JobInfo, manager: Any) -> None:
        for child in children_of(job, manager.list(reap=False)):
            if child.state == "running":
                manager.kill(child.id)


def run_sweep(config: dict[str, Any], ctx: Any) -> Any:
    """A sweep runs no process: its children (optimize jobs) do the work."""
    raise JobError("A sweep runs no process of its own; its cells run as optimize jobs.",
                   "Follow it with `python -m core jobs show <sweep id>`.")
