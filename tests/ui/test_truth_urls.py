"""Quiet failures shown where the user looks (issue 20, item 6), on the pages.

- A link that names several models to compare (``?compare=a&compare=b``) keeps every one of them. Bug guarded: on a
  server's first request (legacy ``pages/`` mode) a deep link detours through app.py (ui.routing), and the detour
  passed the URL on as (name, value) pairs: Streamlit sets a pair's value, so the second ``compare`` replaced the
  first and the session came back with the last model only.
- A malformed secrets file is an error on the Models page (its keys used to show "not set", nothing else).
- A search record whose callbacks failed says so on the Optimization page (it used to pass for a whole one)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.ui.conftest import APP, assert_clean

MODELS = ["gpt-4o-mini", "claude-haiku-4-5", "gpt-5-mini"]


def open_link(page: str, **params: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params.update(params)
    at.switch_page(page)
    return at.run()


@pytest.mark.cold_server
@pytest.mark.parametrize("page", ["pages/baselines.py", "pages/models.py"])
def test_a_cold_deep_link_keeps_every_model_to_compare(empty, page):
    at = open_link(page, compare=MODELS, student="gpt-4o-mini")
    assert_clean(at)
    assert at.session_state["models.compare"] == MODELS
    assert at.query_params["compare"] == MODELS  # and the URL the page shows still names all of them


def test_a_warm_link_keeps_every_model_to_compare(empty):
    at = open_link("pages/models.py", compare=MODELS[:2])
    assert_clean(at)
    assert at.session_state["models.compare"] == MODELS[:2]


def test_a_malformed_secrets_file_is_shown_on_the_models_page(empty, tmp_path, monkeypatch):
    broken = tmp_path / "broken-secrets.toml"
    broken.write_text('OPENAI_API_KEY = "sk-in-a-broken-file-0123456789"\nANTHROPIC_API_KEY = unquoted\n',
                      encoding="utf-8")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(broken))
    at = open_link("pages/models.py")
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Models"]  # the page still works, and says what is wrong
    errors = [str(e.value) for e in at.error]
    assert any(f"{broken}, line 2" in e and "not valid TOML" in e for e in errors), errors
    assert not any("sk-in-a-broken-file" in str(e.value) for e in [*at.error, *at.caption, *at.markdown])


def test_an_incomplete_search_record_says_so_on_the_optimization_page(empty, tmp_path, monkeypatch):
    from core.tasks import TaskRef
    from core.tracking.store import RunStore
    from tests.core.test_truth_plumbing import record_with_failing_callback
    from tests.scenario import write_csv

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    run_id = record_with_failing_callback(RunStore(empty), ref, empty.jobs_dir / "gepa", monkeypatch)
    at = open_link("pages/optimization.py", run=run_id)
    assert_clean(at)
    warnings = [str(w.value) for w in at.warning]
    assert any(w.startswith("Search record incomplete: ") and "callback errors (first: on_iteration_end: "
               "RuntimeError: state unreadable" in w for w in warnings), warnings
    assert not any("sk-planted" in w for w in warnings)


def test_a_run_whose_traces_could_not_all_be_written_says_so_on_the_optimization_page(empty, tmp_path, monkeypatch):
    """The trace writer counts what the store refused (metric and tag traces_dropped); the run's page says it."""
    from core.tasks import TaskRef
    from core.tracking.store import RunStore
    from core.tracking.trace_writer import report_dropped
    from tests.core.test_truth_plumbing import record_with_failing_callback
    from tests.scenario import write_csv

    ref = TaskRef(kind="file", source=str(write_csv(tmp_path / "scenario.csv", 12)), name="scenario")
    store = RunStore(empty)
    run_id = record_with_failing_callback(store, ref, empty.jobs_dir / "gepa", monkeypatch)
    report_dropped(store.client, run_id, 5, "database is locked")
    at = open_link("pages/optimization.py", run=run_id)
    assert_clean(at)
    warnings = [str(w.value) for w in at.warning]
    assert "Some traces of this run are missing: could not write 5 traces of this run to MLflow (last error: " \
           "database is locked)" in warnings, warnings
