"""Sweeps under AppTest: the Optimize page's sweep form shows the grid's arithmetic and queues one sweep with a job per
cell; Compare narrows to a sweep's runs and shows a table per cell."""

from __future__ import annotations

import pytest

from core.jobs import JobManager
from tests.ui.conftest import assert_clean, open_page, texts

ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_optimize_page_sweep_form_queues_one_job_per_cell(empty):
    from core.jobs.sweeps import SweepGrid, plan_sweep
    from core.lm.models import ModelCatalog
    from core.optimize import OptimizeConfig

    at = open_page("pages/optimize.py", ROLES)
    assert_clean(at)
    at.multiselect(key="optimize.sweep.students").set_value(["gpt-4o-mini", "claude-sonnet-4-5"]).run()
    at.multiselect(key="optimize.sweep.optimizers").set_value(["gepa", "fewshot"]).run()
    at.number_input(key="optimize.sweep.seeds").set_value(2).run()
    assert_clean(at)
    shown = metrics(at)
    assert shown["Jobs"] == "8" and shown["Runs at once"] == "2"  # local processes: GEPA_STUDIO_MAX_JOBS (2)
    assert at.button(key="optimize.sweep.run").label == "Run sweep (8 jobs)"
    at.button(key="optimize.sweep.run").click().run()
    assert_clean(at)
    jobs = JobManager(empty).list()
    sweep = next(j for j in jobs if j.kind == "sweep")
    children = [j for j in jobs if j.kind == "optimize"]
    assert sweep.state == "running" and len(children) == 8 and set(sweep.config["children"]) == {j.id for j in children}
    assert {j.state for j in children} == {"queued"} and {j.config["sweep"] for j in children} == {sweep.id}
    cells = {(j.config["student"]["name"], j.config["optimizer"], j.config["seed"]) for j in children}
    assert cells == {(s, o, seed) for s in ("gpt-4o-mini", "claude-sonnet-4-5") for o in ("gepa", "fewshot")
                     for seed in (0, 1)}
    assert any(sweep.id in s for s in texts(at, "success"))
    # The arithmetic on the page is the sum of each cell's own estimate.
    config = OptimizeConfig.from_dict({**children[0].config, "sweep": None})
    grid = SweepGrid(["gpt-4o-mini", "claude-sonnet-4-5"], ["gepa", "fewshot"], [0, 1], ["light"])
    planned = plan_sweep(JobManager(empty), config, grid, ModelCatalog.load(empty.catalog_path))
    calls = sum(p.estimate.metric_calls + p.estimate.test_calls for _, p in planned)
    assert metrics(at)["Student calls"] == f"{calls:,}"
    # The sweep is one card below, its jobs are not in the optimization picker.
    assert "Sweeps" in texts(at, "subheader")
    assert any("0 / 8 cells done" in p.proto.text for p in at.get("progress"))
    picker = [s for s in at.selectbox if s.key == "optimize.job.w"]
    assert not picker or not set(picker[0].options) & {j.id for j in children}


def test_a_bad_sweep_says_which_cell(empty):
    at = open_page("pages/optimize.py", ROLES)
    at.multiselect(key="optimize.sweep.optimizers").set_value(["gepa", "miprov2"]).run()
    at.text_input(key="optimize.sweep.more_budgets").input("calls:60").run()
    errors = texts(at, "error")
    assert any("gpt-4o-mini · miprov2 · calls:60 · seed 0" in e and "MIPROv2's budget is auto" in e
               for e in errors), errors
    assert not [b for b in at.button if b.key == "optimize.sweep.run"]


def seed_sweep(settings) -> None:
    """A sweep's four optimizations (small and big, GEPA, light, seeds 0 and 1) and one optimization outside it."""
    from core.tracking.store import TAG, RunStore

    store = RunStore(settings)
    for model, seed, after, cost in (("small", 0, 0.58, 0.02), ("small", 1, 0.62, 0.03), ("big", 0, 0.8, 0.1),
                                     ("big", 1, 0.9, 0.2), ("small", 2, 0.99, 1.0)):
        sweep = {f"{TAG}sweep": "sweep-1"} if seed < 2 else {}
        run_id = store.start_run("optimization", "demo", run_name=f"GEPA · {model} ← teacher",
                                 params={"budget": "light", "seed": seed},
                                 tags={f"{TAG}model": model, f"{TAG}program": "gepa",
                                       f"{TAG}reflection_model": "teacher", f"{TAG}repeat_key": model, **sweep})
        store.log_metrics(run_id, {"original_test_accuracy": 0.2, "optimized_test_accuracy": after,
                                   "optimization_cost_usd": cost, "student_cost_usd": cost / 2,
                                   "reflection_cost_usd": cost / 2})
        store.end_run(run_id)


def test_compare_groups_a_sweep_per_cell(empty):
    seed_sweep(empty)
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert "Sweep cells" not in texts(at, "subheader")
    at.selectbox(key="compare.sweep").set_value("sweep-1").run()
    assert_clean(at)
    assert "Sweep cells" in texts(at, "subheader")
    table = next(d.value for d in at.dataframe if "with_results" in d.value.columns)
    rows = {r["student"]: r for r in table.to_dict("records")}
    assert set(rows) == {"small", "big"}  # the run outside the sweep is not in it
    small, big = rows["small"], rows["big"]
    assert (small["optimizer"], small["budget"], small["runs"], small["with_results"]) == ("GEPA", "light", 2, 2)
    assert small["optimized"] == pytest.approx(0.60) and big["optimized"] == pytest.approx(0.85)
    assert (small["optimized_min"], small["optimized_max"]) == pytest.approx((0.58, 0.62))
    assert small["gain"] == pytest.approx(0.40) and big["cost_usd"] == pytest.approx(0.3)
    # The rest of Compare shows the sweep's runs only: its cost chart has the four optimizations.
    assert "Optimizations" in texts(at, "subheader")
