"""Every page under Streamlit's AppTest: widgets exist, actions reach core, errors are messages, never tracebacks."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
import streamlit as st

from core.config.errors import StoreError
from core.jobs import JobManager
from core.lm.models import ModelCatalog, openai_compatible
from core.optimize import OptimizeConfig
from core.tasks import SampleSpec, TaskRef
from tests.scenario import make_table, write_csv
from tests.ui.conftest import APP, assert_clean, open_page, texts

ROOT = Path(APP).parent
PAGES = ["home", "models", "task", "baselines", "optimize", "compare", "optimization", "prompts", "history"]
ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}


def chart_specs(at) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def table_with(at, *columns: str) -> pd.DataFrame:
    """The first dataframe on the page that has these columns (plain st.dataframe elements carry no key)."""
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    raise AssertionError(f"no table with columns {columns}")


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


# All pages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_an_empty_store(empty, page):
    at = open_page(f"pages/{page}.py")
    assert_clean(at)
    assert at.title, "every page has a title"
    assert at.button(key="app.refresh")  # the shared sidebar
    assert str(empty.data_dir) in " ".join(texts(at.sidebar, "caption"))


@pytest.mark.parametrize("page", ["home", "baselines", "compare", "optimization", "prompts", "history"])
def test_a_store_failure_is_a_message_not_a_traceback(empty, page, monkeypatch):
    def down(*args, **kwargs):
        raise StoreError("The MLflow store cannot be reached.", "Check MLFLOW_TRACKING_URI.")

    monkeypatch.setattr("core.tracking.store.RunStore.list_runs", down)
    at = open_page(f"pages/{page}.py")
    assert not at.exception
    assert "The MLflow store cannot be reached." in texts(at, "error")
    assert "Check MLFLOW_TRACKING_URI." in texts(at, "caption")


@pytest.mark.cold_server
def test_a_deep_link_on_a_cold_server_still_goes_through_app_py(empty):
    at = open_page("pages/compare.py")  # Streamlit would run pages/compare.py alone here
    assert_clean(at)
    assert [t.value for t in at.title] == ["Compare"]
    assert at.button(key="app.refresh"), "app.py ran: the shared sidebar is there"
    assert "app.next_page" not in at.session_state


def test_pages_never_import_dspy_litellm_or_mlflow():
    banned = {"dspy", "litellm", "mlflow"}
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & banned, f"{path.name} imports {names}"


def test_sessions_share_runs_but_not_selections(seeded, monkeypatch):
    monkeypatch.setattr("ui.state.browser_id", lambda: "first-browser-0123456789abcdef")
    first = open_page("pages/models.py")
    first.selectbox(key="models.student.w").select("gpt-4o-mini").run()
    assert first.session_state["models.student"] == "gpt-4o-mini"
    monkeypatch.setattr("ui.state.browser_id", lambda: "second-browser-0123456789abcdef")  # another browser
    second = open_page("pages/home.py")
    assert second.session_state["models.student"] is None
    assert metrics(second)["Baselines"] == "2" and metrics(second)["Optimizations"] == "1"


# Home ----------------------------------------------------------------------------------------


def test_home_shows_storage_key_status_counts_and_start_links(seeded, monkeypatch):
    secret = "sk-test-never-shown-123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    at = open_page("pages/home.py")
    assert_clean(at)
    lines = texts(at, "markdown")
    assert "OpenAI (`OPENAI_API_KEY`): :green[:material/check_circle: present]" in lines
    assert "Anthropic (`ANTHROPIC_API_KEY`): :orange[:material/cancel: missing]" in lines
    shown = " ".join(lines + texts(at, "caption") + texts(at.sidebar, "caption"))
    assert secret not in shown and str(seeded.data_dir) in shown
    assert metrics(at)["Evaluations"] == "2"
    links = [link.proto.page for link in at.get("page_link")]
    assert {"models", "task", "baselines", "optimize"} <= set(links), links


def test_refresh_clears_the_cached_runs(empty):
    from core.tracking.store import RunStore

    at = open_page("pages/home.py")
    assert metrics(at)["Baselines"] == "0"
    store = RunStore(empty)
    run_id = store.start_run("baseline", "demo", run_name="m · original", tags={"studio.model": "m"})
    store.end_run(run_id)
    at.run()
    assert metrics(at)["Baselines"] == "0"  # cached for a few seconds
    at.button(key="app.refresh").click().run()
    assert metrics(at)["Baselines"] == "1"


# Models --------------------------------------------------------------------------------------


def test_models_roles_are_kept_across_pages(empty):
    at = open_page("pages/models.py")
    assert_clean(at)
    at.selectbox(key="models.student.w").select("gpt-4o-mini")
    at.selectbox(key="models.reflection.w").select("claude-sonnet-4-5")
    at.multiselect(key="models.compare.w").select("gpt-4o-mini").select("gpt-oss-120b (Databricks)")
    at.run()
    assert at.session_state["models.student"] == "gpt-4o-mini"
    assert at.session_state["models.reflection"] == "claude-sonnet-4-5"
    assert at.session_state["models.compare"] == ["gpt-4o-mini", "gpt-oss-120b (Databricks)"]
    at.switch_page("pages/task.py").run()
    at.switch_page("pages/models.py").run()
    assert at.selectbox(key="models.student.w").value == "gpt-4o-mini"
    assert at.multiselect(key="models.compare.w").value == ["gpt-4o-mini", "gpt-oss-120b (Databricks)"]
    table = table_with(at, "name", "price from")
    row = table[table["name"] == "gpt-4o-mini"].iloc[0]
    assert row["key"] == "OPENAI_API_KEY: missing" and row["price from"] == "litellm"


def test_models_add_a_local_model_and_a_bad_url_is_a_message(empty):
    at = open_page("pages/models.py")
    at.text_input(key="models.add.name").input("my-llama")
    at.text_input(key="models.add.model").input("llama3.1")
    at.button(key="models.add.submit").click().run()
    assert_clean(at)
    assert "Added my-llama (openai/llama3.1) to the catalog." in texts(at, "success")
    assert "my-llama" in at.selectbox(key="models.student.w").options
    saved = ModelCatalog.load(empty.catalog_path).get("my-llama")
    assert saved.api_base == "http://localhost:11434/v1" and saved.provider == "openai-compatible"

    at.text_input(key="models.add.name").input("broken")
    at.text_input(key="models.add.model").input("llama3.1")
    at.text_input(key="models.add.api_base").input("localhost:11434")
    at.button(key="models.add.submit").click().run()
    assert not at.exception
    assert any("is not an http(s) URL" in e for e in texts(at, "error"))
    assert "E.g. http://localhost:11434/v1" in texts(at, "caption")
    assert "broken" not in ModelCatalog.load(empty.catalog_path).models


def test_models_check_connection_against_a_server_and_a_missing_key(empty, stub):
    catalog = ModelCatalog.load(empty.catalog_path)
    catalog.add(openai_compatible("stub", "stub-small", stub.base_url))
    catalog.save()
    at = open_page("pages/models.py")
    at.selectbox(key="models.check.name").select("stub")
    at.button(key="models.check").click().run()
    assert_clean(at)
    assert any(s.startswith("stub: answered in") for s in texts(at, "success"))
    assert stub.chat_requests(), "the check really called the server"

    at.selectbox(key="models.check.name").select("gpt-4o-mini")
    at.button(key="models.check").click().run()
    assert not at.exception
    assert any("OPENAI_API_KEY" in e for e in texts(at, "error"))


def test_models_found_on_servers_can_be_added(empty, stub):
    found = [openai_compatible("llama3.1 (Ollama)", "llama3.1", "http://127.0.0.1:11434/v1")]
    at = open_page("pages/models.py")
    with mock.patch("core.lm.models.detect_ollama", return_value=found) as detect:
        at.button(key="models.ollama").click().run()
    detect.assert_called_once()
    at.text_input(key="models.scan.base").input(stub.base_url)
    at.button(key="models.scan").click().run()
    assert_clean(at)
    assert [d["name"] for d in at.session_state["models.found"]] == ["stub-large (local)", "stub-small (local)"]
    at.button(key="models.found.add").click().run()
    names = ModelCatalog.load(empty.catalog_path).names()
    assert "stub-small (local)" in names and "stub-large (local)" in names
    assert at.session_state["models.found"] == []


# Task ----------------------------------------------------------------------------------------


def test_task_defaults_to_the_demo_with_a_preview(empty):
    at = open_page("pages/task.py")
    assert_clean(at)
    assert at.session_state["task.ref"]["kind"] == "demo"
    assert at.session_state["task.sample"] == SampleSpec().to_dict()
    assert any("Using **demo**" in s and "15 train" in s and "50 test" in s for s in texts(at, "success"))
    specs = chart_specs(at)
    assert len(specs) == 2 and "Sampled examples per label" in specs[0]
    assert len(at.dataframe[0].value) == 15  # the train split


def test_task_sizes_are_stored_and_impossible_sizes_are_a_message(empty):
    at = open_page("pages/task.py")
    at.number_input(key="task.train").set_value(5)
    at.number_input(key="task.val").set_value(2)
    at.number_input(key="task.seed").set_value(7).run()
    assert_clean(at)
    assert at.session_state["task.sample"] == {"train_per_label": 5, "val_per_label": 2, "test_per_label": 10,
                                               "seed": 7, "method": "one_stream", "stratify": ""}
    at.number_input(key="task.test").set_value(500).run()
    assert not at.exception
    assert any("Not enough rows per label" in e for e in texts(at, "error"))
    assert any(c.startswith("Still selected: **demo**") for c in texts(at, "caption"))
    assert at.session_state["task.sample"]["test_per_label"] == 10  # the last good choice stays


def test_task_upload_choose_columns_warnings_and_errors(empty):
    table = make_table(20).rename(columns={"description": "sentence", "target": "label"}).assign(source="same")
    table = pd.concat([table, table.head(2), pd.DataFrame([{"sentence": "", "label": "METHODS", "source": "same"}])])
    at = open_page("pages/task.py")
    at.radio(key="task.kind.w").set_value("file").run()
    assert any("Upload a table" in i for i in texts(at, "info"))
    at.file_uploader(key="task.file.w").set_value(("trial.csv", table.to_csv(index=False).encode(), "text/csv")).run()
    assert_clean(at)
    assert at.selectbox(key="task.file.text").value == "sentence"
    assert at.selectbox(key="task.file.label").value == "label"
    warnings = " ".join(texts(at, "warning"))
    assert "duplicate row(s)" in warnings and "empty text" in warnings
    ref = at.session_state["task.ref"]
    assert ref["kind"] == "file" and ref["text_column"] == "sentence" and ref["name"] == "trial"
    assert Path(ref["source"]).parent == empty.data_dir / "uploads"

    at.selectbox(key="task.file.label").select("source").run()
    assert not at.exception
    assert any("distinct label" in e for e in texts(at, "error"))
    assert at.session_state["task.ref"]["label_column"] == "label"


def test_task_pubmed_from_a_local_copy_and_a_missing_file_is_a_message(empty, tmp_path):
    at = open_page("pages/task.py")
    at.radio(key="task.kind.w").set_value("pubmed").run()
    assert any("Load PubMed" in i for i in texts(at, "info"))
    at.text_input(key="task.pubmed.source").input("/nonexistent/pubmed/train.txt")
    at.button(key="task.pubmed.load").click().run()
    assert not at.exception
    assert texts(at, "error"), "the DataError is shown"
    assert at.session_state["task.ref"]["kind"] == "demo"

    local = write_csv(tmp_path / "train.csv", per_label=20)  # the hub's CSV format: description, target
    at.text_input(key="task.pubmed.source").input(str(local))
    at.button(key="task.pubmed.load").click().run()
    assert_clean(at)
    assert any("Using **pubmed**" in s for s in texts(at, "success"))
    assert at.session_state["task.ref"] == TaskRef(kind="pubmed", source=str(local)).to_dict()


# Baselines -----------------------------------------------------------------------------------


def test_baselines_start_a_job_and_watch_its_progress(empty):
    at = open_page("pages/baselines.py", {"models.compare": ["gpt-4o-mini", "claude-haiku-4-5"]})
    assert_clean(at)
    assert len(at.warning) == 2  # both keys are missing: said before starting
    real = JobManager.submit_baselines
    with mock.patch.object(JobManager, "submit_baselines", autospec=True, side_effect=real) as submit:
        at.button(key="baselines.start").click().run()
    assert_clean(at)
    _, task_ref, sample, specs = submit.call_args.args
    assert task_ref == TaskRef() and sample == SampleSpec()
    assert [s.name for s in specs] == ["gpt-4o-mini", "claude-haiku-4-5"]
    assert submit.call_args.kwargs == {"module": "predict", "threads": 8, "cache": True, "started_by": "local"}
    job_id = at.session_state["baselines.job_id"]
    manager = JobManager(empty)
    assert manager.get(job_id).state == "queued"
    assert [p.text for p in at.get("progress")] == ["gpt-4o-mini: waiting", "claude-haiku-4-5: waiting"]

    manager.write_progress(job_id, {"phase": "evaluating", "models": {"gpt-4o-mini": {"done": 20, "total": 50},
                                                                      "claude-haiku-4-5": {"done": 0, "total": 50}}})
    at.run()
    assert [p.text for p in at.get("progress")][0] == "gpt-4o-mini: 20 / 50 examples"
    # Provider errors as they happen: retried calls, failed examples by kind, a model given up on while the next runs.
    dead = "gpt-4o-mini: stopped after 5 provider failures in a row (last: server_error: 500)."
    manager.write_progress(job_id, {"phase": "evaluating", "models": {
        "gpt-4o-mini": {"done": 4, "total": 50, "failed": 4, "failed_by_kind": {"server_error": 4}, "retried": 8},
        "claude-haiku-4-5": {"done": 10, "total": 50, "retried": 3}},
        "runs": {"gpt-4o-mini": {"run_id": "r1", "error": dead}}})
    at.run()
    assert [p.text for p in at.get("progress")] == [
        "gpt-4o-mini: 4 / 50 examples · 4 failed · 8 calls retried — failed",
        "claude-haiku-4-5: 10 / 50 examples · 3 calls retried"]
    assert any("4 server error" in w for w in texts(at, "warning")) and dead in texts(at, "warning")
    at.button(key="baselines.cancel").click().run()
    assert manager.get(job_id).state == "cancelled"


def test_baselines_that_cannot_start_are_a_message(empty):
    at = open_page("pages/baselines.py", {"models.compare": ["gpt-4o-mini"],
                                          "task.sample": SampleSpec(3, 0, 1000).to_dict()})
    at.button(key="baselines.start").click().run()
    assert not at.exception
    assert any("Not enough rows per label" in e for e in texts(at, "error"))
    assert at.session_state["baselines.job_id"] is None


def test_baselines_results_of_the_task(seeded):
    at = open_page("pages/baselines.py")
    assert_clean(at)
    table = table_with(at, "model", "cost_per_1k", "run_id")
    assert sorted(table["model"]) == ["stub-large", "stub-small"]
    assert "stub-large · Predict" in chart_specs(at)[0]  # labels say the program kind (core.tracking.runs.chart_frame)


# Optimize ------------------------------------------------------------------------------------


def test_optimize_needs_both_roles(empty):
    at = open_page("pages/optimize.py", {"models.student": "gpt-4o-mini"})
    assert_clean(at)
    assert any("Models page" in i for i in texts(at, "info"))
    assert not [b for b in at.button if b.key == "optimize.start"]


def test_optimize_estimate_then_start_with_each_budget(empty):
    at = open_page("pages/optimize.py", ROLES)
    assert_clean(at)
    assert metrics(at)["Metric calls"] == "440"  # light, 15 train examples and no validation split
    real = JobManager.submit_optimization
    with mock.patch.object(JobManager, "submit_optimization", autospec=True, side_effect=real) as submit:
        at.button(key="optimize.start").click().run()
        config: OptimizeConfig = submit.call_args.args[1]
        assert (config.student.name, config.reflection.name) == (ROLES["models.student"], ROLES["models.reflection"])
        assert config.auto == "light" and config.max_metric_calls is None and config.max_cost_usd is None
        assert config.task_ref == TaskRef() and config.sample == SampleSpec()
        first = at.session_state["optimize.job_id"]
        assert JobManager(empty).get(first).state == "queued"

        at.segmented_control(key="optimize.budget").set_value("custom").run()
        at.number_input(key="optimize.max_calls").set_value(120)
        at.toggle(key="optimize.capped").set_value(True).run()
        at.number_input(key="optimize.cap").set_value(1.5).run()
        assert metrics(at)["Metric calls"] == "120"
        at.button(key="optimize.start").click().run()
        config = submit.call_args.args[1]
    assert_clean(at)
    assert config.auto is None and config.max_metric_calls == 120 and config.max_cost_usd == 1.5
    assert at.session_state["optimize.job_id"] != first


def test_optimize_each_optimizer_from_the_page(empty):
    """MIPROv2, few-shot and your own prompt are one choice away: each estimate names its model's role, and Start
    submits that optimizer (your prompt as typed; no budget to choose for it)."""
    at = open_page("pages/optimize.py", ROLES)
    real = JobManager.submit_optimization
    with mock.patch.object(JobManager, "submit_optimization", autospec=True, side_effect=real) as submit:
        for name, role in (("miprov2", "prompt model and teacher"), ("fewshot", "teacher")):
            at.segmented_control(key="optimize.optimizer").set_value(name).run()
            assert_clean(at)
            assert f"Calls of the {role}" in metrics(at)
            assert "custom" not in at.segmented_control(key="optimize.budget").options
            at.button(key="optimize.start").click().run()
            assert submit.call_args.args[1].optimizer == name and submit.call_args.args[1].auto == "light"
        at.segmented_control(key="optimize.optimizer").set_value("own").run()
        assert not [c for c in at.segmented_control if c.key == "optimize.budget"]
        assert not [b for b in at.button if b.key == "optimize.start"]  # nothing to start before a prompt is typed
        assert any("Type or paste your prompt" in i for i in texts(at, "info")), texts(at, "info")
        at.text_area(key="optimize.own_instruction").input("Label each sentence by its role: BACKGROUND, METHODS...")
        at.run()
        at.button(key="optimize.start").click().run()
        config = submit.call_args.args[1]
    assert_clean(at)
    assert config.optimizer == "own" and config.instruction.startswith("Label each sentence by its role")


def test_optimize_impossible_budget_is_a_message(empty):
    at = open_page("pages/optimize.py", ROLES)
    at.segmented_control(key="optimize.budget").set_value("custom").run()
    at.number_input(key="optimize.max_calls").set_value(5).run()
    assert not at.exception
    assert any("cannot even evaluate the starting program" in e for e in texts(at, "error"))
    assert at.button(key="optimize.start").disabled


def test_optimize_live_progress_cancel_and_resume(empty):
    from core.lm.models import PRESETS

    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=PRESETS[4], reflection=PRESETS[8],
                            max_cost_usd=3.0)
    manager = JobManager(empty)
    job_id = manager.submit("optimize", "GEPA gpt-4o-mini ← claude-sonnet-4-5 · demo · light", config.to_dict())
    manager.write_progress(job_id, {
        "phase": "optimizing", "message": "", "metric_calls_used": 40, "metric_calls_budget": 440, "iteration": 3,
        "candidates": 2, "best_val_score": 0.75, "elapsed_s": 12.0, "student_cost_usd": 0.01,
        "reflection_cost_usd": 0.02, "total_cost_usd": 0.03,
        "history": [{"t": 1.0, "metric_calls": 15, "iteration": 0, "best_score": 0.6, "val_score": 0.6},
                    {"t": 9.0, "metric_calls": 40, "iteration": 3, "best_score": 0.75, "val_score": 0.75}],
    })
    at = open_page("pages/optimize.py", {"optimize.job_id": job_id})
    assert_clean(at)
    assert at.get("progress")[0].text == "40 / 440 metric calls"
    assert any("Queued: starts when a job slot is free · best validation 75.0 % · 40/440 metric calls" in m
               for m in texts(at, "markdown"))
    shown = metrics(at)
    assert shown["Best validation score"] == "75.0%" and shown["Candidates"] == "2" and shown["Total cost"] == "$0.0300"
    assert "Optimization progress" in chart_specs(at)[0]
    at.button(key="optimize.cancel").click().run()
    assert manager.get(job_id).state == "cancelled"
    at.button(key="optimize.resume").click().run()
    assert_clean(at)
    assert manager.get(job_id).state == "queued"


def test_optimize_a_capped_job_shows_one_state_line_and_offers_its_test_evaluation(empty):
    from core.lm.models import PRESETS
    from core.program.program import make_program, program_to_dict
    from core.tasks import prepare, split_fingerprint
    from core.tracking.store import TAG, RunStore
    from ui.widgets import usd

    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=PRESETS[4], reflection=PRESETS[8],
                            max_cost_usd=0.05)
    task, splits = prepare(config.task_ref, config.sample, empty)
    manager, store = JobManager(empty), RunStore(empty)
    job_id = manager.submit("optimize", "GEPA gpt-4o-mini ← claude-sonnet-4-5 · demo · light", config.to_dict(),
                            plan={"task": task.to_dict(), "splits": splits.to_dict()})
    run_id = store.start_run("optimization", task.name, run_name="GEPA", tags={f"{TAG}job_id": job_id},
                             params={"test_fingerprint": split_fingerprint(splits.test, task)})
    program = program_to_dict(make_program(task), task)
    store.log_artifacts(run_id, {"config.json": config.to_dict(), "original_program.json": program,
                                 "optimized_program.json": program})
    store.set_tags(run_id, {f"{TAG}stop_reason": "spending cap $0.05 reached"})
    store.end_run(run_id, "KILLED")
    manager.set_run_id(job_id, run_id)
    manager.write_progress(job_id, {
        "phase": "stopped", "message": "spending cap $0.05 reached", "metric_calls_used": 62,
        "metric_calls_budget": 60, "best_val_score": 2 / 3, "student_calls": 40, "student_cost_usd": 0.002,
        "total_cost_usd": 0.05, "history": [{"t": 1.0, "metric_calls": 0, "best_score": 0.5, "val_score": 0.5},
                                            {"t": 5.0, "metric_calls": 26, "best_score": 2 / 3, "val_score": 2 / 3}]})
    manager.finish(job_id, "cancelled", error="spending cap $0.05 reached")
    at = open_page("pages/optimize.py", {"optimize.job_id": job_id})
    assert_clean(at)
    said = [t for kind in ("markdown", "caption", "info", "warning") for t in texts(at, kind) if "spending cap" in t
            and not t.startswith("Budget ")]  # the card's setup line: "Budget light · spending cap $0.05"
    assert "Budget light · spending cap $0.05" in texts(at, "caption")
    assert said == [f"**{manager.get(job_id).title}**  \n:material/stop_circle: Stopped: spending cap $0.05 reached"
                    " · best validation 66.7 % · 62/60 metric calls"], said
    assert at.get("progress")[0].text.startswith("62 / 60 metric calls")
    chart = json.loads(chart_specs(at)[0])  # the chart reaches the 62 calls the bar counts, and marks the budget
    assert chart["layout"]["xaxis"]["range"] == [0, 62] and "budget 60" in json.dumps(chart)
    button = at.button(key="optimize.finish")
    assert button.label == f"Evaluate on the test set (≈ {usd(2 * len(splits.test) * 0.002 / 40)})"
    assert not [b for b in at.button if b.key == "optimize.resume"]  # its cap is spent: it would stop at once
    inside = [p.proto for p in at.get("page_link") if p.proto.page.endswith("optimization")]
    assert [(p.label, p.query_string) for p in inside] == [("See inside the optimization so far",
                                                            f"run={run_id}")]
    manager.finish(job_id, "cancelled", error="cancelled")  # cancelled by hand instead: it can also go on
    at.run()
    assert any(m.endswith("Cancelled · best validation 66.7 % · 62/60 metric calls") for m in texts(at, "markdown"))
    assert at.button(key="optimize.resume") and (button := at.button(key="optimize.finish"))
    button.click().run()
    assert_clean(at)
    finish = [j for j in manager.list() if j.kind == "finish"]
    assert len(finish) == 1 and finish[0].config == {"run_id": run_id} and finish[0].state == "queued"
    assert not [b for b in at.button if b.key == "optimize.finish"]
    assert any(m.startswith("**Test evaluation**") for m in texts(at, "markdown"))
    # Once evaluated: the Result, marked capped; nothing left to evaluate or resume.
    manager.finish(finish[0].id, "succeeded")
    store.log_metrics(run_id, {"original_test_accuracy": 0.5, "optimized_test_accuracy": 0.75})
    st.cache_data.clear()
    at.run()
    assert_clean(at)
    assert metrics(at)["Test accuracy after"] == "75.0%" and any(c.startswith("Capped:") for c in texts(at, "caption"))
    inside = [p.proto for p in at.get("page_link") if p.proto.page.endswith("optimization")]
    assert [(p.label, p.query_string) for p in inside] == [("See inside the optimization", f"run={run_id}")]
    assert not [b for b in at.button if b.key == "optimize.finish"]
    assert not any(m.startswith("**Test evaluation**") for m in texts(at, "markdown"))


# Compare, Prompts, History -------------------------------------------------------------------


def test_compare_charts_paired_test_and_break_even(seeded):
    at = open_page("pages/compare.py")
    assert_clean(at)
    specs = chart_specs(at)
    titles = ["Accuracy by run", "Accuracy vs cost", "F1 per class and run", "F1 per class", "A: ", "B: ",
              "Optimization spend", "Pays back after"]
    assert len(specs) == 8 and all(t in s for t, s in zip(titles, specs, strict=True)), [s[-200:] for s in specs]
    assert "stub-small · Predict · optimized" in specs[0] and "stub-large · Predict" in specs[0]
    shown = metrics(at)
    assert {"Accuracy before", "Accuracy after"} <= set(shown)
    assert len({"McNemar exact p", "Test examples"} & set(shown)) == 1
    assert at.multiselect(key="compare.per_label.runs").value == [seeded.original_id, seeded.optimized_id]
    assert at.selectbox(key="compare.reference").value == seeded.baseline_ids["stub-large"]
    at.toggle(key="compare.newest").set_value(False)
    at.multiselect(key="compare.models").select("stub-large").run()
    assert_clean(at)
    assert "stub-small" not in chart_specs(at)[0]


def test_compare_and_prompts_show_a_capped_optimization_marked(empty, stub):
    from dataclasses import replace

    from core.evaluation.baseline import EvalRun, run_evaluation
    from core.evaluation.evaluate import EvalOptions
    from core.program.program import make_program
    from core.tasks import prepare
    from core.tracking.store import TAG, RunStore

    store, ref, sample = RunStore(empty), TaskRef(), SampleSpec(3, 0, 4, seed=42)
    task, splits = prepare(ref, sample, empty)
    small = openai_compatible("stub-small", "stub-small", stub.base_url, input_price_per_m=0.1, output_price_per_m=0.4)
    opt = store.start_run("optimization", task.name, run_name="GEPA", params={"budget": "light", "module": "predict"},
                          tags={f"{TAG}model": "stub-small", f"{TAG}reflection_model": "stub-large"})
    run = EvalRun(kind="evaluation", parent_run_id=opt, sample=sample, task_ref=ref)
    how = EvalOptions(threads=4, cache=False)
    a, before = run_evaluation(store, task, small, make_program(task), splits.test,
                               replace(run, program_label="original"), how)
    b, after = run_evaluation(store, task, small, make_program(task), splits.test,
                              replace(run, program_label="optimized"), how)
    store.log_metrics(opt, {"optimization_cost_usd": 0.05, "student_cost_usd": 0.01, "reflection_cost_usd": 0.04,
                            "original_test_accuracy": before.metrics["accuracy"],
                            "optimized_test_accuracy": after.metrics["accuracy"]})
    store.set_tags(opt, {f"{TAG}original_eval_run_id": a, f"{TAG}optimized_eval_run_id": b,
                         f"{TAG}stop_reason": "spending cap $0.05 reached"})
    store.end_run(opt, "KILLED")

    at = open_page("pages/compare.py")
    assert_clean(at)
    picker = at.selectbox(key="compare.opt")
    assert picker.value == opt and picker.options[0].endswith(f"capped · Predict · {opt[:8]}")
    assert any("was capped" in c for c in texts(at, "caption"))
    assert at.multiselect(key="compare.per_label.runs").value == [a, b]
    table = table_with(at, "stopped", "module")
    assert set(table["stopped"]) == {"capped"} and set(table["module"]) == {"Predict"}
    at = open_page("pages/compare.py", {"task.ref": TaskRef(kind="file", source="x.csv", name="mine").to_dict()})
    assert at.selectbox(key="compare.task").value == "demo"  # the task of the newest runs, said so
    assert "No runs of task mine yet: showing demo, the task with the newest runs." in texts(at, "caption")
    at = open_page("pages/prompts.py")
    assert_clean(at)
    picker = at.selectbox(key="prompts.opt")
    assert picker.value == opt and "capped · Predict" in picker.options[0]
    assert (at.selectbox(key="prompts.a").value, at.selectbox(key="prompts.b").value) == (a, b)


def test_prompts_diff_download_and_registry_uri(seeded):
    at = open_page("pages/prompts.py")
    assert_clean(at)
    assert at.selectbox(key="prompts.a").value == seeded.original_id
    assert at.selectbox(key="prompts.b").value == seeded.optimized_id
    instruction_diff, prompt_diff = (h.value for h in at.get("html"))
    assert "<ins>" in instruction_diff and "Label as BACKGROUND" in instruction_diff and "<del>" not in instruction_diff
    assert "<ins>" in prompt_diff
    assert at.get("download_button")
    assert any(seeded.prompt_uri in m for m in texts(at, "markdown"))
    at.selectbox(key="prompts.example").select(-1).run()
    at.text_area(key="prompts.text").input("Patients were randomized to drug A.").run()
    assert_clean(at)
    assert sum("Patients were randomized to drug A." in c for c in texts(at, "code")) == 2


def test_history_filters_and_run_detail(seeded):
    at = open_page("pages/history.py")
    assert_clean(at)
    assert "5 of 5 runs" in texts(at, "caption")
    assert any("mlflow ui --backend-store-uri sqlite:///" in c for c in texts(at, "caption"))
    at.multiselect(key="history.kinds").select("baseline").run()
    assert "2 of 5 runs" in texts(at, "caption")
    at.selectbox(key="history.run").select(seeded.baseline_ids["stub-small"]).run()
    assert_clean(at)
    assert "### stub-small · original" in texts(at, "markdown")
    assert len(table_with(at, "text", "gold", "predicted")) == 20
    assert any("Classify the sentence" in c for c in texts(at, "code"))
    at.multiselect(key="history.kinds").set_value(["optimization"]).run()
    at.selectbox(key="history.run").select(seeded.optimization_id).run()
    assert_clean(at)
    assert any("optimization run" in c for c in texts(at, "caption"))

