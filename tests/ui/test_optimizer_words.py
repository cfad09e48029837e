"""Each optimizer speaks for itself (issue 22): the Optimize page under MIPROv2, few-shot and your own prompt says
nothing of GEPA, your own prompt shows no budget, metric-call or reflection controls and an "Evaluate my prompt"
button; a few-shot run's Optimization page says it keeps no search record, shows its candidates and demos, and its
calls and cost by role come from the run's own spend metrics."""

from __future__ import annotations

import pytest

from core.optimize import OPTIMIZERS
from tests.core.test_optimizers import make_config, responder
from tests.scenario import write_csv
from tests.ui.conftest import assert_clean, open_page, texts

ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}
PICKERS = {"optimize.optimizer", "optimize.sweep.optimizers"}  # they list every optimizer by name, GEPA too
KINDS = ("markdown", "caption", "info", "warning", "error", "subheader", "title", "metric", "button", "number_input",
         "segmented_control", "toggle", "text_area", "expander", "selectbox", "multiselect")


def words_on(at) -> list[str]:
    """Every text the page shows (labels, values, help included), but the pickers of optimizers."""
    shown = []
    for kind in KINDS:
        for element in at.get(kind):
            if getattr(element, "key", None) not in PICKERS:
                shown.append(str(element.proto))
    return shown


def metric_labels(at) -> list[str]:
    return [m.label for m in at.metric]


@pytest.mark.parametrize("name", [n for n in OPTIMIZERS if n != "gepa"])
def test_no_gepa_words_under_another_optimizer(empty, name):
    at = open_page("pages/optimize.py", ROLES)
    at.segmented_control(key="optimize.optimizer").set_value(name).run()
    if OPTIMIZERS[name].instruction_needed:
        at.text_area(key="optimize.own_instruction").input("Label each sentence by its role.").run()
    assert_clean(at)
    gepa = [w for w in words_on(at) if "GEPA" in w.replace("GEPA_STUDIO", "").replace("GEPA Studio", "")]
    assert not gepa, gepa[:3]


def test_gepa_keeps_its_words_and_controls(empty):
    at = open_page("pages/optimize.py", ROLES)
    assert_clean(at)
    assert any("GEPA runs the student" in c for c in texts(at, "caption"))
    assert "Metric calls" in metric_labels(at) and "Calls of the reflection model" in metric_labels(at)
    assert "custom" in at.segmented_control(key="optimize.budget").options
    assert at.button(key="optimize.start").label == "Start optimization"


def test_own_prompt_shows_no_budget_metric_calls_or_reflection(empty):
    at = open_page("pages/optimize.py", ROLES)
    at.segmented_control(key="optimize.optimizer").set_value("own").run()
    at.text_area(key="optimize.own_instruction").input("Label each sentence by its role.").run()
    assert_clean(at)
    labels = metric_labels(at)
    assert not [m for m in labels if "Metric calls" in m or "reflection" in m.lower()], labels
    assert "Budget" not in texts(at, "subheader")
    assert not [c for c in at.segmented_control if c.key == "optimize.budget"]
    assert not [t for t in at.toggle if t.key == "optimize.capped"]
    assert not [w for w in at.number_input if w.key in ("optimize.minibatch", "optimize.seeds", "optimize.seed")]
    assert at.button(key="optimize.start").label == "Evaluate my prompt"
    form = [w for w in words_on(at) if "optimize.sweep." not in w]  # the sweep form below runs other optimizers
    assert not [w for w in form if "reflection model" in w], "own prompt uses no reflection model"


@pytest.fixture
def fewshot_run(empty, stub, tmp_path):
    """A tiny few-shot run (2 random candidates, a teacher) over HTTP against the stub, in the page's store."""
    from core.optimize import run_optimization
    from core.tasks import TaskRef
    from core.tracking.store import RunStore

    stub.responder = responder
    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    config = make_config(ref, stub.base_url, "fewshot", auto=None, max_full_evals=1)
    store = RunStore(empty)
    result = run_optimization(config, store, log_dir=tmp_path / "log")
    assert result.status == "succeeded", result.error
    return store, result.run_id


def test_a_fewshot_run_says_it_keeps_no_search_record_and_costs_by_its_own_figures(fewshot_run):
    store, run_id = fewshot_run
    metrics = store.get_run(run_id).data.metrics
    at = open_page("pages/optimization.py", {"optimization.run_id": run_id})
    assert_clean(at)
    infos = texts(at, "info")
    assert any("Few-shot keeps no search record" in i for i in infos), infos
    shown = " ".join(infos + texts(at, "caption") + texts(at, "markdown"))
    assert "made before GEPA Studio kept one" not in shown and "No calls recorded" not in shown
    assert "(teacher)" in next(m for m in texts(at, "markdown") if "stub-small" in m)
    assert {"Candidates", "Demos in the optimized prompt"} <= set(texts(at, "subheader"))
    roles = next(f.value for f in at.dataframe if "role" in f.value.columns).set_index("role")
    assert roles.loc["student", "cost_usd"] == pytest.approx(metrics["student_cost_usd"])
    assert roles.loc["teacher", "cost_usd"] == pytest.approx(metrics["reflection_cost_usd"])
    assert roles.loc["student", "input_tokens"] == int(metrics["student_input_tokens"])
    assert roles.loc["student", "cost_usd"] + roles.loc["teacher", "cost_usd"] == pytest.approx(metrics["spent_usd"])
    assert "test evaluation" in roles.index
    tracing = store.get_run(run_id).data.tags.get("studio.tracing")
    assert tracing in ("on", "off")
    if tracing == "on":
        assert not any("tracing was off" in c for c in texts(at, "caption"))
