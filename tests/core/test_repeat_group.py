"""A repeat is a group, as a sweep is: one ``repeat`` job over N seeds' optimize jobs, one card with each seed's
progress, one entry in the pickers ("3 seeds") that opens to the seeds (core.jobs.repeats)."""

from __future__ import annotations

from core.jobs import KINDS, JobManager, submit_repeat, submit_repeats, sweep_progress
from core.jobs.repeats import GROUP, entry_of, optimization_choices, repeat_children, seed_choices
from core.presets import optimize_form
from core.tracking.runs import optimization_frame
from core.tracking.store import RunStore
from tests.core.test_optimize import InlineBackend, config, fake_factory
from tests.core.test_repeats import STUDENT, TEACHER, ref  # noqa: F401 - ref is a fixture

OPTIMIZE_PICKER = ("optimize", "repeat")  # the Optimize page's Progress picker (ui.jobs.job_picker)


def picker_rows(manager: JobManager):
    jobs = manager.frame()
    return jobs[jobs["kind"].isin(OPTIMIZE_PICKER) & jobs["sweep"].isna()]


def test_a_three_seed_repeat_is_one_group_job_with_a_row_per_seed(settings, ref):  # noqa: F811
    backend = InlineBackend(fake_factory())
    manager = JobManager(settings, backend=backend)
    backend.manager = manager
    base = config(ref, STUDENT, TEACHER, max_metric_calls=30, seed=0)
    group_id = submit_repeat(manager, base, 3, started_by="ana")

    group = next(j for j in manager.list() if j.id == group_id)  # list() reaps: the group settles from its seeds
    assert group.kind == "repeat" and KINDS["repeat"].group is not None
    assert group.title.endswith(" · 3 seeds") and group.state == "succeeded", group.error
    children = repeat_children(manager, group_id)
    assert [c.config["seed"] for c in children] == [0, 1, 2] and {c.config["sweep"] for c in children} == {group_id}
    assert [c.state for c in children] == ["succeeded"] * 3
    progress = sweep_progress(manager, group_id)
    assert progress["cells_done"] == 3 and [c["seed"] for c in progress["cells"]] == [0, 1, 2]
    assert all(c["metric_calls"] and c["metric_calls_budget"] for c in progress["cells"])  # each seed's own bar
    rows = picker_rows(manager)
    assert list(rows["id"]) == [group_id]  # the picker lists the repeat once, not its seeds

    opts = optimization_frame(RunStore(settings).list_runs())
    entries = optimization_choices(opts)
    [(key, label)] = entries.items()  # one entry for the three runs
    assert key.startswith(GROUP) and " · 3 seeds · " in label and "pupil ← teacher" in label
    seeds = seed_choices(opts, key)
    assert [label.split(" · ")[0] for label in seeds.values()] == ["seed 0", "seed 1", "seed 2"]
    assert set(seeds) == {c.run_id for c in children}
    assert {entry_of(opts, run_id) for run_id in seeds} == {key}


def test_one_cancel_reaches_every_seed_and_one_seed_stays_a_plain_job(settings, ref):  # noqa: F811
    manager = JobManager(settings)
    base = config(ref, STUDENT, TEACHER, max_metric_calls=30, seed=4)
    group_id = submit_repeat(manager, base, 3, start=False)
    assert [c.state for c in repeat_children(manager, group_id)] == ["queued"] * 3
    assert manager.get(group_id).state == "running"
    manager.cancel(group_id)
    assert [c.state for c in repeat_children(manager, group_id)] == ["cancelled"] * 3
    assert manager.get(group_id).state == "cancelled"

    [single] = submit_repeats(manager, base, 1, start=False)
    assert manager.get(single).kind == "optimize" and not manager.get(single).config.get("sweep")


def test_the_form_table_names_what_its_sources_name():
    from core.jobs import MAX_SEEDS
    from core.optimize import OPTIMIZERS
    from core.optimize.config import COMPONENT_SELECTORS
    from core.program.program import STARTS

    assert optimize_form.MAX_SEEDS == MAX_SEEDS
    assert set(optimize_form.OPTIMIZERS) == set(OPTIMIZERS) and set(optimize_form.STARTS) == set(STARTS)
    assert set(optimize_form.SELECTORS) == set(COMPONENT_SELECTORS)
