"""The Optimization page on a real small GEPA run (fake LMs, in-process): its search record as the page shows it, the
``run=`` link (a new session, and a link within one), the links from Optimize, Compare and History, and an older run
without search.json."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.scenario import write_csv
from tests.stub_server import chat_answer, field_value, hinted_label, improved_instruction
from tests.ui.conftest import APP, _env, assert_clean, fresh_data_dir, open_page, texts, use_shared_store


@dataclass(frozen=True)
class Searched:
    data_dir: Path
    run_id: str
    original_id: str
    optimized_id: str


def student_reply(system: str, user: str) -> str:
    return chat_answer("target", hinted_label(system, field_value(user, "description")))


def reflection_replies():
    """Every other proposal drops the hints (GEPA rejects it on its minibatch); the others add the missing ones."""
    turn = itertools.count()

    def reply(system: str, user: str) -> str:
        if next(turn) % 2:
            return json.dumps({"new_instruction": "Answer BACKGROUND for every sentence."})
        return json.dumps({"new_instruction": improved_instruction(system + "\n" + user)})

    return reply


@pytest.fixture(scope="session")
def searched_store(tmp_path_factory, template_db) -> Searched:
    """One finished optimization with fake LMs (student and reflection in-process), in its own data dir."""
    from core.config.settings import load_settings
    from core.lm.models import ModelSpec
    from core.optimize import OptimizeConfig, run_optimization
    from core.tasks import SampleSpec, TaskRef
    from core.tracking.store import RunStore
    from tests.fake_lm import fake_lm

    root = tmp_path_factory.mktemp("searched")
    data_dir = fresh_data_dir(root, template_db)
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, data_dir, root / "no-secrets.toml")
        mp.setenv("DSPY_CACHEDIR", str(root / "dspy-cache"))
        mp.setenv("GEPA_STUDIO_TRACES", "on")  # the page shows the run's trace counts
        priced = dict(input_price_per_m=1.0, output_price_per_m=4.0)
        student = ModelSpec("pupil", "openai/pupil", "openai-compatible", api_base="http://127.0.0.1:9/v1", **priced)
        teacher = ModelSpec("teacher", "openai/teacher", "openai-compatible", api_base="http://127.0.0.1:9/v1",
                            **priced)
        lms = {"pupil": fake_lm(student_reply, "fake/pupil"), "teacher": fake_lm(reflection_replies(), "fake/teacher")}
        ref = TaskRef(kind="file", source=str(write_csv(root / "scenario.csv", 12)), name="scenario")
        config = OptimizeConfig(task_ref=ref, sample=SampleSpec(3, 2, 4, seed=3), student=student, reflection=teacher,
                                auto=None, max_metric_calls=60, threads=2, reflection_minibatch_size=3)
        result = run_optimization(config, RunStore(load_settings().ensure()), log_dir=root / "gepa",
                                  lm_factory=lambda spec: lms[spec.name])
    assert result.status == "succeeded", result.error
    return Searched(data_dir, result.run_id, result.original_eval_run_id, result.optimized_eval_run_id)


@pytest.fixture
def searched(searched_store, monkeypatch, tmp_path) -> Searched:
    use_shared_store(monkeypatch, searched_store.data_dir, tmp_path)
    return searched_store


def store_of(settings_dir: Path):
    from core.config.settings import load_settings
    from core.tracking.store import RunStore

    settings = load_settings().ensure()
    assert settings.data_dir == settings_dir
    return RunStore(settings)


def with_url(page: str, **params: str) -> AppTest:
    """A new session opened on ``page`` with these URL parameters (a link from outside, or a reload)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.switch_page(page)
    return at.run()


def chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def table_with(at, *columns: str) -> pd.DataFrame:
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}")


def links_to_optimization(at) -> list[str]:
    """The query strings of the page's links to the Optimization page."""
    return [p.proto.query_string for p in at.get("page_link") if p.proto.page.endswith("optimization")]


def test_a_link_opens_the_run_with_its_search(searched):
    from core.analytics.search import lineage, rejected_proposals

    store = store_of(searched.data_dir)
    record = store.read_json(searched.run_id, "search.json")
    at = with_url("pages/optimization.py", run=searched.run_id)
    assert_clean(at)
    assert [t.value for t in at.title] == ["Optimization"]
    assert at.selectbox(key="optimization.run").value == searched.run_id
    assert at.session_state["optimization.run_id"] == searched.run_id  # kept, and in the URL of every page
    assert at.query_params["run"] == searched.run_id
    header = next(m for m in texts(at, "markdown") if m.startswith("**pupil** ← **teacher**"))
    assert "budget" in header and "test accuracy" in header and "→" in header
    specs = chart_specs(at)
    assert len(specs) == 4, [s.get("layout", {}).get("title") for s in specs]  # score, lineage, grid, cost by role
    from core.tracking.tracing import trace_counts

    counts = {role: n for role, n in trace_counts(store, searched.run_id).items() if n}
    traces = next(c for c in texts(at, "caption") if "MLflow traces" in c)
    assert counts and all(f"{n:,} " in traces for n in counts.values()), (counts, traces)
    assert f"mlflow ui --backend-store-uri sqlite:///{searched.data_dir}" in traces

    # The candidate picker: every candidate, the winner first in view; a child shows its diff against its parent.
    tree = lineage(record)
    picker = at.selectbox(key="optimization.candidate")
    assert [o.split(" · ")[0] for o in picker.options] == [f"#{i}" for i in tree["idx"]]
    assert picker.value == record["best_idx"] and picker.options[picker.index].endswith(" · best")
    child = tree[tree["parents"].map(len) > 0].iloc[0]
    picker.select(int(child["idx"])).run()
    assert_clean(at)
    assert str(child["instruction"]) in texts(at, "code")
    diffs = [h.value for h in at.get("html") if "gs-diff" in h.value]
    assert len(diffs) == len(child["parents"]) and all("<ins>" in d or "<del>" in d for d in diffs)

    # Rejected proposals: the table and, for the one picked, what the reflection model read.
    rejected = rejected_proposals(record)
    assert len(rejected) >= 1, "every other proposal of this run drops the hints: GEPA turns it down"
    assert len(table_with(at, "parent_score", "new_score", "reason")) == len(rejected)
    at.selectbox(key="optimization.proposal").select(len(rejected) - 1).run()
    assert str(rejected.iloc[-1]["instruction"]) in texts(at, "code")
    assert str(rejected.iloc[-1]["feedback"]) in texts(at, "code")

    # Cost by role: the test evaluation is the two child evaluations' calls and cost.
    roles = table_with(at, "role", "calls", "cost_usd").set_index("role")
    metrics = [store.get_run(r).data.metrics for r in (searched.original_id, searched.optimized_id)]
    assert roles.loc["test evaluation", "calls"] == sum(m["lm_calls"] for m in metrics)
    assert roles.loc["test evaluation", "cost_usd"] == pytest.approx(sum(m["cost_usd"] for m in metrics))
    assert {"student on train minibatches", "reflection"} <= set(roles.index)


def test_links_within_a_session_put_the_run_in_view(searched, seeded_store):
    """Compare, History and Optimize link to the page with ``run=``; a link clicked within a session wins over what
    the session had in view (app.py follows it before putting the session's state back in the URL)."""
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert links_to_optimization(at) == [f"run={searched.run_id}"]
    at.session_state["optimization.run_id"] = "0" * 32  # something else in view, as after an earlier visit
    at.query_params["run"] = searched.run_id  # what the link carries
    at.switch_page("pages/optimization.py").run()
    assert_clean(at)
    assert at.selectbox(key="optimization.run").value == searched.run_id
    assert at.session_state["optimization.run_id"] == searched.run_id

    at = open_page("pages/history.py")
    at.multiselect(key="history.kinds").set_value(["optimization"]).run()
    at.selectbox(key="history.run").select(searched.run_id).run()
    assert_clean(at)
    assert links_to_optimization(at) == [f"run={searched.run_id}"]


def test_an_unknown_run_in_a_link_shows_the_newest(searched):
    at = with_url("pages/optimization.py", run="f" * 32)
    assert_clean(at)
    assert at.selectbox(key="optimization.run").value == searched.run_id
    assert any("No optimization" in c and "showing the newest" in c for c in texts(at, "caption"))


def test_an_older_run_without_search_json_says_so_and_shows_what_it_can(seeded):
    at = with_url("pages/optimization.py", run=seeded.optimization_id)
    assert_clean(at)
    assert at.selectbox(key="optimization.run").value == seeded.optimization_id
    assert any("no record of GEPA's search" in i for i in texts(at, "info"))
    assert not [s for s in at.selectbox if s.key == "optimization.candidate"]
    roles = table_with(at, "role", "calls", "cost_usd")
    # What it has: its own spend metrics by role (no calls counted: it logged no progress) and the paired test
    # evaluations.
    assert list(roles["role"]) == ["student", "reflection model", "test evaluation"]
    assert list(roles["cost_usd"])[:2] == pytest.approx([0.01, 0.04])


def test_no_optimization_yet(empty):
    at = open_page("pages/optimization.py")
    assert_clean(at)
    assert "No optimization yet." in texts(at, "info")
