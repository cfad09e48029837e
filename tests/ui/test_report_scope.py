"""Compare's report covers exactly the runs in view, and the pickers list a repeat once (issue 22).

- The report's runs are the runs under F1 per class, the optimization in view and its break-even reference: never
  the evaluations of another (newer) optimization. Bug guarded: F1 per class defaulted to the newest optimization's
  evaluations while the optimization in view was the one the URL named, so the report mixed the two.
- A repeat's seeds are one entry ("… · 3 seeds") on Compare and on Optimization, that opens to its seeds."""

from __future__ import annotations

import pytest

from tests.ui import test_state_reload
from tests.ui.conftest import assert_clean
from tests.ui.test_seed_spread import seed_repeats
from tests.ui.test_state_persist import with_url

two_optimizations = test_state_reload.two_optimizations  # the same two seeded optimizations (a pytest fixture)


@pytest.fixture
def built(monkeypatch) -> list[list[str]]:
    """The run ids of every report built (the real report is still built)."""
    import core.report

    calls: list[list[str]] = []
    real = core.report.build_report

    def spy(run_store, run_ids, **kw):
        calls.append(list(run_ids))
        return real(run_store, run_ids, **kw)

    monkeypatch.setattr(core.report, "build_report", spy)
    return calls


def test_the_report_covers_the_optimization_the_url_names_not_the_newest(two_optimizations, built):
    older, newer = two_optimizations
    at = with_url("pages/compare.py", run=older.optimization_id)
    assert_clean(at)
    assert at.selectbox(key="compare.opt").value == older.optimization_id
    picked = at.multiselect(key="compare.per_label.runs").value
    assert picked == [older.original_id, older.optimized_id], picked  # its own evaluations, not the newest ones
    at.button(key="compare.report.build").click().run()
    assert_clean(at)
    reference = at.selectbox(key="compare.reference").value
    assert built == [[older.original_id, older.optimized_id, older.optimization_id, reference]]
    assert not {newer.optimization_id, newer.original_id, newer.optimized_id} & set(built[0])


def test_picking_another_optimization_brings_its_evaluations_into_the_report(two_optimizations, built):
    older, newer = two_optimizations
    at = with_url("pages/compare.py", run=older.optimization_id)
    at.selectbox(key="compare.opt").set_value(newer.optimization_id).run()
    assert_clean(at)
    assert at.multiselect(key="compare.per_label.runs").value == [newer.original_id, newer.optimized_id]
    at.button(key="compare.report.build").click().run()
    reference = at.selectbox(key="compare.reference").value
    assert built == [[newer.original_id, newer.optimized_id, newer.optimization_id, reference]]
    # A run the user adds under F1 per class joins the report: it is theirs.
    baseline = newer.baseline_ids["stub-large"]  # the break-even reference too: once in the report
    at.multiselect(key="compare.per_label.runs").select(baseline).run()
    at.button(key="compare.report.build").click().run()
    assert_clean(at)
    assert reference == baseline and built[1] == [newer.original_id, newer.optimized_id, baseline,
                                                  newer.optimization_id]


@pytest.mark.parametrize(("page", "key", "seed_key"), [("pages/compare.py", "compare.opt", "compare.seed"),
                                                        ("pages/optimization.py", "optimization.run",
                                                         "optimization.seed")])
def test_a_repeat_is_one_entry_that_opens_to_its_seeds(empty, page, key, seed_key):
    from core.config.settings import load_settings

    ids = seed_repeats(load_settings().ensure())
    at = with_url(page, run=ids[1])
    assert_clean(at)
    picker = at.selectbox(key=key)
    grouped = [o for o in picker.options if "3 seeds" in o]
    assert len(grouped) == 1 and len(picker.options) == 2, picker.options  # the repeat, and the lone run
    assert picker.value == "seeds:abc123"
    seeds = at.selectbox(key=seed_key)
    assert seeds.value == ids[1] and [o.split(" · ")[0] for o in seeds.options] == ["seed 0", "seed 1", "seed 2"]
    seeds.set_value(ids[2]).run()
    assert_clean(at)
    assert at.session_state["optimization.run_id"] == ids[2]
