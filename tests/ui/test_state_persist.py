"""Working state that lasts: a new session (a reload, a restart, a second tab) comes back from the URL, then this
browser's profile; the URL keeps the shareable part across page switches; a running job of the user shows up."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.jobs import JobManager
from core.lm.models import PRESETS
from core.optimize import OptimizeConfig
from core.presets.profile import Profile
from core.tasks import SampleSpec, TaskRef
from tests.ui.conftest import APP, assert_clean, open_page, texts

LASTING = ("models.student", "models.reflection", "models.compare", "task.ref", "task.sample",
           "baselines.job_id", "optimize.job_id", "compare.run_ids", "prompts.run_id")


def with_url(page: str, **params: str | list[str]) -> AppTest:
    """A new session opened on ``page`` with these URL parameters (a link, or a reload of a URL)."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.switch_page(page)
    return at.run()


def lasting(at: AppTest) -> dict:
    return {key: at.session_state[key] for key in LASTING}


def test_a_new_session_restores_models_task_and_job_from_the_profile(empty):
    other = JobManager(empty).submit("baseline", "Baseline: gpt-4o-mini", {"specs": []}, start=False,
                                     started_by="someone-else")  # not this user's: only the profile brings it back
    at = open_page("pages/models.py")
    at.selectbox(key="models.student.w").select("gpt-4o-mini")
    at.selectbox(key="models.reflection.w").select("claude-sonnet-4-5")
    at.multiselect(key="models.compare.w").select("gpt-5-mini").run()
    at.switch_page("pages/task.py").run()
    at.number_input(key="task.train").set_value(4)
    at.number_input(key="task.seed").set_value(9).run()
    at.switch_page("pages/baselines.py").run()
    at.selectbox(key="baselines.job.w").select(other).run()
    assert_clean(at)
    before = lasting(at)
    assert before["task.sample"]["train_per_label"] == 4 and before["baselines.job_id"] == other

    again = open_page("pages/home.py")  # a reload: a new session, no URL parameters
    assert_clean(again)
    assert lasting(again) == before
    assert "gpt-4o-mini" in " ".join(texts(again, "caption"))  # Home says what this session works on
    assert again.query_params["student"] == "gpt-4o-mini" and again.query_params["train"] == "4"
    assert again.query_params["base_job"] == other


def test_the_url_wins_over_the_profile(empty):
    profile = Profile.of(empty.data_dir, "local")  # AppTest has no browser cookie: the user's own profile
    profile.update({"student": "gpt-4o-mini", "reflection": "claude-haiku-4-5",
                    "sample": SampleSpec(train_per_label=4).to_dict(), "optimize_job": "20261101-120000-abc123"})
    at = with_url("pages/home.py", student="gpt-5-mini", compare=["gpt-4o-mini", "claude-haiku-4-5"],
                  task="demo", train="6", val="1", test="8", seed="5", runs="a" * 32 + "," + "b" * 32)
    assert_clean(at)
    state = lasting(at)
    assert state["models.student"] == "gpt-5-mini"  # from the URL
    assert state["models.reflection"] == "claude-haiku-4-5"  # the URL does not say: the profile does
    assert state["models.compare"] == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert state["task.sample"] == SampleSpec(6, 1, 8, seed=5).to_dict()
    assert state["optimize.job_id"] == "20261101-120000-abc123"
    assert state["compare.run_ids"] == ["a" * 32, "b" * 32]
    saved = profile.load()  # the link is now what this browser works on
    assert saved["student"] == "gpt-5-mini" and saved["sample"]["train_per_label"] == 6


def test_a_model_the_catalog_lacks_is_left_out_with_a_message(empty):
    at = with_url("pages/models.py", student="no-such-model", reflection="claude-sonnet-4-5",
                  compare=["gpt-4o-mini", "ghost-model"], task="no-such-task")
    assert_clean(at)
    assert at.session_state["models.student"] is None
    assert at.session_state["models.reflection"] == "claude-sonnet-4-5"
    assert at.session_state["models.compare"] == ["gpt-4o-mini"]
    assert at.session_state["task.ref"] == TaskRef().to_dict()
    [toast] = [t.value for t in at.toast]
    assert "no-such-model" in toast and "ghost-model" in toast and "task" in toast and "\n" not in toast
    assert at.query_params.get("compare") == "gpt-4o-mini" and "student" not in at.query_params


def test_the_url_parameters_come_back_after_a_page_switch(empty):
    at = with_url("pages/home.py", student="gpt-4o-mini", train="5")
    shared = dict(at.query_params)
    assert shared["student"] == "gpt-4o-mini" and shared["task"] == "demo" and shared["train"] == "5"
    at.query_params.clear()  # what the browser does when the user picks another page
    at.query_params["utm"] = "kept"  # a parameter that is not ours
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    assert at.query_params == {**shared, "utm": "kept"}


def test_a_running_job_of_this_user_shows_after_a_reload(empty):
    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=PRESETS[4], reflection=PRESETS[8])
    manager = JobManager(empty)
    mine = manager.submit("optimize", "GEPA mine · demo", config.to_dict(), start=False, started_by="local")
    manager.submit("optimize", "GEPA theirs · demo", config.to_dict(), start=False, started_by="bob@example.org")
    at = open_page("pages/optimize.py")  # a new session, nothing in its URL or profile
    assert_clean(at)
    assert at.session_state["optimize.job_id"] == mine
    assert at.session_state["baselines.job_id"] is None
    assert any("GEPA mine · demo" in m for m in texts(at, "markdown"))
    assert "No optimization in this session yet." not in texts(at, "caption")
    assert at.query_params["opt_job"] == mine


def test_two_browsers_keep_their_own_selections(empty, monkeypatch):
    monkeypatch.setattr("ui.state.browser_id", lambda: "first-browser-0123456789abcdef")
    first = open_page("pages/models.py")
    first.selectbox(key="models.student.w").select("gpt-4o-mini").run()
    monkeypatch.setattr("ui.state.browser_id", lambda: "second-browser-0123456789abcdef")
    assert open_page("pages/home.py").session_state["models.student"] is None
    monkeypatch.setattr("ui.state.browser_id", lambda: "first-browser-0123456789abcdef")
    assert open_page("pages/home.py").session_state["models.student"] == "gpt-4o-mini"


@pytest.mark.cold_server
def test_a_deep_link_on_a_cold_server_keeps_its_parameters(empty):
    at = with_url("pages/baselines.py", student="gpt-4o-mini", test="12")  # runs pages/baselines.py alone first
    assert_clean(at)
    assert [t.value for t in at.title] == ["Baselines"]
    assert at.session_state["models.student"] == "gpt-4o-mini"
    assert at.session_state["task.sample"]["test_per_label"] == 12
    assert at.query_params["student"] == "gpt-4o-mini" and at.query_params["test"] == "12"
