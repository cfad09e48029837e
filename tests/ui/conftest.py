"""Page tests: a temporary data dir and MLflow store per test (empty, or a seeded one shared read-only).

No test starts a job process: ``JobManager.schedule`` is a no-op here, so a submitted job stays queued.
Streamlit's caches are process-wide, so they are cleared around every test.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.stub_server import (
    LABELS,
    StubLLMServer,
    chat_answer,
    field_value,
    hint_for,
    hinted_label,
    last_user_text,
    system_text,
)

APP = str(Path(__file__).resolve().parents[2] / "app.py")
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DATABRICKS_TOKEN", "DATABRICKS_API_BASE", "DATABRICKS_HOST",
            "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CONFIG_PROFILE")


def open_page(page: str, session: dict[str, Any] | None = None, timeout: float = 30) -> AppTest:
    """Run the app on ``page`` (e.g. "pages/models.py") with some session state set first."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.switch_page(page)
    return at.run()


def texts(at: AppTest, element: str) -> list[str]:
    return [str(e.value) for e in getattr(at, element)]


def assert_clean(at: AppTest) -> None:
    """No exception and no error message on the page."""
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, texts(at, "error")


def pytest_configure(config):
    config.addinivalue_line("markers", "cold_server: run pages as on a server's first request (legacy pages/ mode)")


def _env(monkeypatch: pytest.MonkeyPatch, data_dir: Path, secrets: Path) -> None:
    monkeypatch.setenv("GEPA_STUDIO_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{data_dir / 'mlflow.db'}")
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", str(secrets))
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(data_dir / "no-databrickscfg"))  # not the developer's own


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def navigation_as_in_a_running_server(request, monkeypatch):
    """Run every page through app.py, as a warm server does.

    A ``pages/`` folder next to app.py makes Streamlit start each process in its legacy multipage mode
    (run ``pages/x.py`` alone) until the first run calls ``st.navigation``; AppTest resets that flag
    before every run. Tests marked ``cold_server`` keep that legacy start (see ui.routing).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if request.node.get_closest_marker("cold_server"):
        return

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def no_job_processes(monkeypatch):
    """Submitted jobs stay queued: no worker process is ever started by a page test."""
    monkeypatch.setattr("core.jobs.JobManager.schedule", lambda self: [])


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite file (creating one takes ~2 s; copying it, nothing)."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root, root / "no-secrets.toml")
        from core.config.settings import load_settings
        from core.tracking.store import RunStore

        RunStore(load_settings().ensure()).list_runs()
    return root / "mlflow.db"


def fresh_data_dir(root: Path, template_db: Path) -> Path:
    """``<root>/studio``, a data dir whose run store starts as a copy of the migrated empty template."""
    data_dir = root / "studio"
    data_dir.mkdir()
    shutil.copy(template_db, data_dir / "mlflow.db")
    return data_dir


def use_shared_store(monkeypatch, data_dir: Path, tmp_path: Path) -> None:
    """Point this test at a session-wide store (read it, do not write to it). Pages write the session's profile
    into the data dir: it is removed so that no test starts from another's selections."""
    _env(monkeypatch, data_dir, tmp_path / "no-secrets.toml")
    shutil.rmtree(data_dir / "profiles", ignore_errors=True)


@pytest.fixture
def empty(tmp_path, monkeypatch, template_db):
    """A fresh data dir with an empty run store; returns its Settings."""
    data_dir = fresh_data_dir(tmp_path, template_db)
    _env(monkeypatch, data_dir, tmp_path / "no-secrets.toml")
    from core.config.settings import load_settings

    return load_settings().ensure()


@dataclass(frozen=True)
class Seed:
    data_dir: Path
    baseline_ids: dict[str, str]  # model name -> run id
    optimization_id: str
    original_id: str
    optimized_id: str
    prompt_uri: str
    better_instruction: str


def student_or_keywords(model: str, messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """stub-small follows only the rules its instruction teaches; stub-large knows them all."""
    sentence = field_value(last_user_text(messages), "description")
    instruction = system_text(messages)
    if model == "stub-large":
        instruction = " ".join(hint_for(label) for label in LABELS)
    return chat_answer("target", hinted_label(instruction, sentence))


def seed_store(settings: Any, base_url: str) -> Seed:
    """Two baselines and one optimization with its original/optimized evaluations, on the demo task."""
    from core.evaluation.baseline import EvalRun, run_baselines, run_evaluation
    from core.evaluation.evaluate import EvalOptions
    from core.lm.models import openai_compatible
    from core.program.program import get_instruction, make_program, program_to_dict
    from core.tasks import SampleSpec, TaskRef, prepare
    from core.tracking.store import TAG, RunStore

    store = RunStore(settings)
    small = openai_compatible("stub-small", "stub-small", base_url, input_price_per_m=0.1, output_price_per_m=0.4)
    large = openai_compatible("stub-large", "stub-large", base_url, input_price_per_m=5.0, output_price_per_m=15.0)
    ref, sample = TaskRef(), SampleSpec(3, 0, 4, seed=42)
    outcomes = run_baselines(store, ref, sample, [small, large], threads=4, cache=False)
    task, splits = prepare(ref, sample, settings)
    original = make_program(task)
    better_instruction = get_instruction(original) + "\n" + " ".join(hint_for(label) for label in LABELS[:3])
    optimized = make_program(task, instruction=better_instruction)
    opt_id = store.start_run("optimization", task.name, run_name="GEPA · stub-small ← stub-large",
                             params={"budget": "light"},
                             tags={f"{TAG}model": "stub-small", f"{TAG}program": "gepa",
                                   f"{TAG}reflection_model": "stub-large"})
    store.log_artifacts(opt_id, {
        "optimized_program.json": program_to_dict(optimized, task),
        "original_program.json": program_to_dict(original, task),
        "instructions.json": {"original": get_instruction(original), "optimized": better_instruction},
    })
    run = EvalRun(kind="evaluation", parent_run_id=opt_id, sample=sample, task_ref=ref)
    how = EvalOptions(threads=4, cache=False)
    orig_id, before = run_evaluation(store, task, small, original, splits.test,
                                     replace(run, program_label="original"), how)
    optd_id, after = run_evaluation(store, task, small, optimized, splits.test,
                                    replace(run, program_label="optimized"), how)
    uri = "prompts:/demo-stub-small/1"
    store.log_metrics(opt_id, {"optimization_cost_usd": 0.05, "student_cost_usd": 0.01, "reflection_cost_usd": 0.04,
                               "best_val_score": 0.8, "original_test_accuracy": before.metrics["accuracy"],
                               "optimized_test_accuracy": after.metrics["accuracy"]})
    store.set_tags(opt_id, {f"{TAG}original_eval_run_id": orig_id, f"{TAG}optimized_eval_run_id": optd_id,
                            f"{TAG}prompt_uri": uri})
    store.end_run(opt_id)
    return Seed(settings.data_dir, {o.spec.name: o.run_id for o in outcomes}, opt_id, orig_id, optd_id, uri,
                better_instruction)


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory, template_db) -> Seed:
    root = tmp_path_factory.mktemp("seeded")
    data_dir = fresh_data_dir(root, template_db)
    with pytest.MonkeyPatch.context() as mp, StubLLMServer(responder=student_or_keywords) as stub:
        _env(mp, data_dir, root / "no-secrets.toml")
        from core.config.settings import load_settings

        return seed_store(load_settings().ensure(), stub.base_url)


@pytest.fixture
def seeded(seeded_store, monkeypatch, tmp_path) -> Seed:
    """The shared seeded store (see ``use_shared_store``)."""
    use_shared_store(monkeypatch, seeded_store.data_dir, tmp_path)
    return seeded_store


# The auth tests' (test_auth.py, test_proxy_headers.py) --------------------------------------------------------------


@pytest.fixture
def no_auth_settings(monkeypatch):
    """None of the access settings from the developer's shell (those modules use it for every test)."""
    from ui import auth

    for name in (auth.ALLOWED_USERS, auth.ALLOW_UNAUTHENTICATED, auth.REQUIRE_LOGIN, auth.TRUST_PROXY_HEADERS):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bind():
    """Set ``server.address`` as the command line would; restored afterwards."""
    from streamlit import config

    key = "server.address"
    old, where = config.get_option(key), config.get_where_defined(key)
    yield lambda address: config.set_option(key, address)
    config.set_option(key, old, where)
