"""What a reload brings back: the whole Optimize form (profile and URL), the run a URL names on every page, the
notebook preset's own models in the page's header."""

from __future__ import annotations

import pytest

from core.presets.profile import Profile
from tests.stub_server import StubLLMServer
from tests.ui.conftest import assert_clean, open_page, seed_store, student_or_keywords, texts
from tests.ui.test_state_persist import with_url

MODELS = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}
FORM = {"optimize.budget": "custom", "optimize.max_calls": 90, "optimize.capped": True, "optimize.cap": 1.5,
        "optimize.seeds": 3, "optimize.threads": 2, "optimize.start_program": "own",
        "optimize.instruction": "Label each sentence by its role."}


def form_of(at) -> dict:
    return {key: at.session_state[key] for key in FORM}


def test_the_optimize_form_comes_back_after_a_reload(empty):
    at = open_page("pages/optimize.py", {**MODELS, **FORM})  # the user set the form, then reloads
    assert_clean(at)
    saved = Profile.of(empty.data_dir, "local").load()["optimize_form"]
    assert saved["budget"] == "custom" and saved["cap"] == 1.5 and saved["seeds"] == 3
    assert at.query_params["budget"] == "custom"
    assert at.query_params["calls"] == "90" and at.query_params["cap"] == "1.5"

    again = open_page("pages/optimize.py", MODELS)  # a new session: nothing but the profile
    assert_clean(again)
    assert form_of(again) == FORM
    assert again.number_input(key="optimize.max_calls").value == 90
    assert again.number_input(key="optimize.cap").value == 1.5
    assert "Start 3 optimizations" in [b.label for b in again.button]
    assert again.query_params["seeds"] == "3" and again.query_params["capped"] == "1"


def test_a_link_sets_the_form_over_the_profile(empty):
    Profile.of(empty.data_dir, "local").update({"optimize_form": {"budget": "medium", "threads": 8}})
    at = with_url("pages/optimize.py", budget="custom", calls="120", capped="1", cap="0.5", seeds="99",
                  student=MODELS["models.student"], reflection=MODELS["models.reflection"])
    assert_clean(at)
    assert at.session_state["optimize.budget"] == "custom" and at.session_state["optimize.max_calls"] == 120
    assert at.session_state["optimize.cap"] == 0.5 and at.session_state["optimize.threads"] == 8  # the profile's
    assert "optimize.seeds" not in at.session_state or at.session_state["optimize.seeds"] == 1  # 99 is no seed count
    [toast] = [t.value for t in at.toast]
    assert "seeds" in toast


def test_the_running_jobs_card_shows_its_cap_and_budget(empty):
    at = open_page("pages/optimize.py", {**MODELS, **FORM, "optimize.seeds": 1})
    at.button(key="optimize.start").click().run()
    assert_clean(at)
    assert any(c == "Budget 90 metric calls · spending cap $1.50" for c in texts(at, "caption")), texts(at, "caption")


@pytest.fixture
def two_optimizations(empty):
    with StubLLMServer(responder=student_or_keywords) as stub:
        older = seed_store(empty, stub.base_url)
        newer = seed_store(empty, stub.base_url)
    return older, newer


def test_prompts_shows_the_run_its_url_names(two_optimizations):
    older, newer = two_optimizations
    at = with_url("pages/prompts.py", run=older.optimization_id)  # not the newest: the one the link names
    assert_clean(at)
    assert at.session_state["prompts.opt"] == older.optimization_id
    assert (at.session_state["prompts.a"], at.session_state["prompts.b"]) == (older.original_id, older.optimized_id)
    assert at.session_state["optimization.run_id"] == older.optimization_id
    at.switch_page("pages/optimization.py").run()  # the same run in view on the next page
    assert at.session_state["optimization.run"] == older.optimization_id


def test_the_notebook_preset_names_its_own_models_in_the_header(empty):
    at = open_page("pages/optimize.py", {**MODELS, "optimize.setup": "notebook"})
    assert_clean(at)
    student = at.session_state["optimize.notebook.student"]
    header = [m for m in texts(at, "markdown") if m.startswith("**Student**")]
    assert header == [f"**Student**  \n{student}"] and "gpt-4o-mini" not in header[0]
    assert "No optimization in this session yet." not in texts(at, "caption")
    assert Profile.of(empty.data_dir, "local").load()["optimize_form"]["setup"] == "notebook"


def test_a_missing_key_error_goes_once_the_key_is_set(empty, monkeypatch):
    failed = {"model": "gpt-4o-mini", "ok": False, "latency_s": 0.0, "sample": "", "kind": "auth",
              "message": "OPENAI_API_KEY is not set", "hint": "Set it.", "key_present": False}
    at = open_page("pages/models.py", {"models.last_check": failed})
    assert any("OPENAI_API_KEY is not set" in e for e in texts(at, "error"))  # still true: it stays
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    at.run()  # the user set the key and came back
    assert not any("OPENAI_API_KEY is not set" in e for e in texts(at, "error"))
    assert at.session_state["models.last_check"] is None
