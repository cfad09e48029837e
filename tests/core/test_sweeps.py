"""Sweeps (core.jobs.sweeps): a grid of optimizations as one group job; its state follows its children; one cancel,
one resume; every run a child makes carries ``studio.sweep``."""

from __future__ import annotations

import json
import os

import pytest

from core.config.errors import ConfigError, ModelError
from core.jobs import JobManager
from core.jobs.sweeps import MAX_SWEEP_JOBS, SweepGrid, budget_fields, expand, submit_sweep, sweep_progress
from core.lm.models import ModelCatalog, ModelSpec
from core.tracking.store import RUN_COLUMNS, RunStore
from tests.core.test_optimize import PRICED, InlineBackend, config, fake_factory

API = "http://127.0.0.1:9/v1"
PUPIL = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base=API, **PRICED)
PUPIL2 = ModelSpec("pupil2", "openai/pupil2", "openai-compatible", api_base=API, **PRICED)
TEACHER = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base=API, **PRICED)


@pytest.fixture
def ref(tmp_path):
    from core.tasks import TaskRef
    from tests.scenario import write_csv

    return TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")


@pytest.fixture
def catalog(tmp_path):
    return ModelCatalog(path=tmp_path / "models.json", models={m.name: m for m in (PUPIL, PUPIL2, TEACHER)})


class HeldBackend:
    """Starts nothing: a job stays running until the test ends it; ``gone`` handles read as dead processes."""

    max_jobs = 1

    def __init__(self):
        self.n, self.gone, self.killed = 0, set(), []

    def start(self, job_id, settings):
        self.n += 1
        return f"held:{self.n}"

    def alive(self, handle):
        return handle not in self.gone

    def kill(self, handle):
        self.killed.append(handle)
        self.gone.add(handle)


@pytest.fixture
def held(settings, monkeypatch):
    """A manager whose jobs run nowhere (no MLflow store needed: nothing runs)."""
    monkeypatch.setattr("core.jobs.registry.init_store", lambda settings: None)
    backend = HeldBackend()
    return JobManager(settings, backend=backend), backend


def test_grid_expands_to_checked_configs(ref, catalog):
    grid = SweepGrid(["pupil", "pupil2"], ["gepa", "fewshot"], [0, 1], ["light", "evals:3"])
    assert grid.size == 16 and len(grid.cells()) == 16
    cells = expand(config(ref, PUPIL, TEACHER), grid, catalog)
    by_cell = {(c["student"], c["optimizer"], c["budget"], c["seed"]): cfg for c, cfg in cells}
    gepa = by_cell[("pupil2", "gepa", "light", 1)]
    assert (gepa.student, gepa.optimizer, gepa.auto, gepa.max_metric_calls, gepa.seed) == (
        PUPIL2, "gepa", "light", None, 1)
    few = by_cell[("pupil", "fewshot", "evals:3", 0)]
    assert (few.optimizer, few.auto, few.max_full_evals, few.reflection) == ("fewshot", None, 3, TEACHER)
    assert budget_fields("calls:60") == {"auto": None, "max_metric_calls": 60, "max_full_evals": None}
    # Seeds of one cell are one repeat: the sweep id is not part of the experiment.
    assert by_cell[("pupil", "gepa", "light", 0)].repeat_key() == by_cell[("pupil", "gepa", "light", 1)].repeat_key()


@pytest.mark.parametrize("grid, error, message", [
    (dict(students=[], optimizers=["gepa"]), ConfigError, "no students"),
    (dict(students=["pupil"], optimizers=["gepa"], budgets=["lots"]), ConfigError, "Unknown budget 'lots'"),
    (dict(students=["pupil"], optimizers=["gepa"], seeds=[1, 1]), ConfigError, "twice"),
    (dict(students=["pupil"], optimizers=["gepa"], seeds=list(range(MAX_SWEEP_JOBS + 1))), ConfigError, "at most 64"),
    (dict(students=["nobody"], optimizers=["gepa"]), ModelError, "Unknown model 'nobody'"),
    (dict(students=["pupil"], optimizers=["simplex"]), ConfigError, "Unknown optimizer 'simplex'"),
    (dict(students=["pupil"], optimizers=["gepa", "own"], seeds=[0, 1]), ConfigError, "no seed"),
    (dict(students=["pupil"], optimizers=["miprov2"], budgets=["calls:60"]), ConfigError,
     "pupil · miprov2 · calls:60 · seed 0: MIPROv2's budget is auto"),
])
def test_bad_grids_are_refused_before_anything_is_queued(held, ref, catalog, grid, error, message):
    manager, _ = held
    with pytest.raises(error, match=message) as err:
        submit_sweep(manager, config(ref, PUPIL, TEACHER), SweepGrid(**grid), catalog)
    assert err.value.hint
    assert manager.list() == []


@pytest.mark.slow
def test_a_sweep_of_four_runs_and_tags_every_run(settings, ref, catalog):
    backend = InlineBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    grid = SweepGrid(["pupil", "pupil2"], ["gepa"], [0, 1], ["calls:20"])
    sweep_id = submit_sweep(manager, config(ref, PUPIL, TEACHER), grid, catalog, started_by="ana")
    sweep = manager.get(sweep_id)
    assert sweep.kind == "sweep" and sweep.state == "succeeded", sweep.error
    children = [manager.get(j) for j in sweep.config["children"]]
    assert [c.state for c in children] == ["succeeded"] * 4 and {c.config["sweep"] for c in children} == {sweep_id}
    assert len({json.dumps(manager.plan(c.id), sort_keys=True) for c in children}) == 1  # one plan for all cells

    store = RunStore(settings)
    runs = store.list_runs()
    assert "sweep" in RUN_COLUMNS
    opts = runs[runs["kind"] == "optimization"]
    assert len(opts) == 4 and set(opts["sweep"]) == {sweep_id} and set(opts["run_id"]) == {c.run_id for c in children}
    evals = runs[runs["kind"] == "evaluation"]
    assert len(evals) == 8 and set(evals["sweep"]) == {sweep_id}  # the paired test evaluations carry it too
    assert sorted(opts["model"]) == ["pupil", "pupil", "pupil2", "pupil2"]

    progress = manager.progress(sweep_id)
    kids = [manager.progress(c.id) for c in children]
    assert (progress["cells_done"], progress["cells_total"], progress["by_state"]) == (4, 4, {"succeeded": 4})
    assert progress["metric_calls_used"] == sum(p["metric_calls_used"] for p in kids) > 4 * 16
    assert progress["total_cost_usd"] == pytest.approx(sum(p["total_cost_usd"] for p in kids))
    best = max(kids, key=lambda p: p["best_val_score"])
    assert progress["best"]["best_val_score"] == best["best_val_score"]
    assert [(c["student"], c["seed"]) for c in progress["cells"]] == [("pupil", 0), ("pupil", 1), ("pupil2", 0),
                                                                      ("pupil2", 1)]


def test_cancel_a_sweep_cancels_its_children(held, ref, catalog):
    manager, _ = held
    grid = SweepGrid(["pupil"], ["gepa"], [0, 1, 2, 3], ["calls:30"])
    sweep_id = submit_sweep(manager, config(ref, PUPIL, TEACHER), grid, catalog)
    ids = manager.get(sweep_id).config["children"]
    assert [manager.get(j).state for j in ids] == ["running", "queued", "queued", "queued"]  # max_jobs 1
    assert manager.get(sweep_id).state == "running"
    assert manager.progress(sweep_id)["by_state"] == {"running": 1, "queued": 3}
    assert manager.cancel(sweep_id).state == "running"  # its running child stops after its current iteration
    assert [manager.get(j).state for j in ids[1:]] == ["cancelled"] * 3 and manager.cancel_requested(ids[0])
    manager.finish(ids[0], "cancelled", "cancelled")  # what the worker does once it sees the request
    sweep = manager.get(sweep_id)
    assert sweep.state == "cancelled" and sweep.error == "4 of 4 cells cancelled"
    assert manager.get(sweep_id).resumable


def test_an_interrupted_child_interrupts_the_sweep_and_resume_goes_on(held, ref, catalog):
    manager, backend = held
    backend.max_jobs = 2
    grid = SweepGrid(["pupil", "pupil2"], ["gepa"], [0], ["calls:30"])
    sweep_id = submit_sweep(manager, config(ref, PUPIL, TEACHER), grid, catalog)
    first, second = manager.get(sweep_id).config["children"]
    manager.finish(second, "succeeded")
    manager.kill(sweep_id)  # kills its running children: their processes are gone
    assert backend.killed == ["held:1"]
    sweep = manager.get(sweep_id)
    assert manager.get(first).state == "interrupted" and sweep.state == "interrupted"
    assert sweep.error.startswith("1 of 2 cells interrupted: pupil · gepa · calls:30 · seed 0")
    assert sweep.resumable
    sweep = manager.resume(sweep_id)
    assert sweep.state == "running"
    assert manager.get(first).state == "running" and manager.get(second).state == "succeeded"
    assert manager.get(first).attempts == 2
    manager.finish(first, "failed", "pupil: the provider answered 500 " + "x" * 300)
    sweep = manager.get(sweep_id)
    assert sweep.state == "failed" and "1 of 2 cells failed: pupil · gepa" in sweep.error and sweep.error.endswith("…")


def test_sweep_progress_sums_children(held, ref, catalog):
    manager, backend = held
    backend.max_jobs = 2
    grid = SweepGrid(["pupil", "pupil2"], ["gepa"], [0], ["calls:30"])
    sweep_id = submit_sweep(manager, config(ref, PUPIL, TEACHER), grid, catalog)
    a, b = manager.get(sweep_id).config["children"]
    manager.write_progress(a, {"metric_calls_used": 12, "total_cost_usd": 0.25, "best_val_score": 0.5})
    manager.write_progress(b, {"metric_calls_used": 7, "total_cost_usd": 0.5, "best_val_score": 0.75})
    p = sweep_progress(manager, sweep_id)
    assert (p["metric_calls_used"], p["total_cost_usd"], p["cells_done"], p["cells_total"]) == (19, 0.75, 0, 2)
    assert p["best"]["student"] == "pupil2" and p["best_val_score"] == 0.75
    assert os.path.exists(manager.job_dir(sweep_id) / "progress.json")


def test_cli_queues_a_sweep_and_shows_its_aggregate(settings, ref, monkeypatch, capsys):
    from core.cli.main import main

    monkeypatch.setattr("core.jobs.JobManager.schedule", lambda self: [])  # the children stay queued
    argv = ["sweep", "--task", ref.source, "--students", f"openai/pupil,openai/pupil2@{API}", "--api-base", API,
            "--reflection", "openai/teacher", "--optimizers", "gepa,fewshot", "--budgets", "light,evals:2",
            "--seeds", "1", "--train-per-label", "3", "--val-per-label", "2", "--test-per-label", "4"]
    assert main([*argv[:9], "--optimizers", "miprov2", "--budgets", "calls:60"]) == 2
    assert "Sweep cell pupil · miprov2 · calls:60 · seed 0: MIPROv2's budget is auto" in capsys.readouterr().err
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "2 students × 2 optimizers × 1 seeds × 2 budgets = 8 cells" in err and "runs 2 at once" in err
    sweep_id = out.splitlines()[0].split()[1]
    assert len([line for line in out.splitlines()[1:] if " · seed 0" in line]) == 8
    assert main(["jobs", "show", sweep_id]) == 0
    shown = capsys.readouterr().out
    assert f"job {sweep_id}: running" in shown and "cells 0/8 done (8 queued)" in shown
    assert "pupil2 · fewshot · evals:2 · seed 0" in shown
