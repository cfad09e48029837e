"""The original notebook's experiment on the dashboard: the Optimize page's preset (its settings, its estimate, Start
submits exactly the preset), PubMed's error without the hub, the starting program choice, Compare's claims beside a
reproduction and the starting program on Prompts."""

from __future__ import annotations

import shutil

import pytest
import streamlit as st

from core.jobs import JobManager
from core.lm.models import ModelSpec
from core.optimize import OptimizeConfig
from core.presets import notebook
from core.presets.notebook import PRESET, REPRODUCTION_TAG, SIDE_TAG, START_TAG, NotebookModels
from core.tasks import TaskRef
from core.tracking.store import RunStore
from tests.core.test_notebook import write_tables
from tests.ui.conftest import _env, assert_clean, open_page, texts
from ui.notebook import AGREEMENT, MODE, TEST, TRAIN

ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}


def buttons(at) -> list[str]:
    return [b.key for b in at.button]


def test_the_preset_shows_the_notebooks_settings_and_start_submits_exactly_them(empty, tmp_path):
    train, test = write_tables(tmp_path)
    at = open_page("pages/optimize.py", {MODE: "notebook", TRAIN: str(train), TEST: str(test)})
    assert_clean(at)
    settings = at.table[0].value["the notebook's"]
    assert "own random_state=1" in settings["Sampling"]
    assert "bare: DSPy's bare signature" in settings["Starting program"]
    assert settings["GEPA"] == "auto light, reflection minibatch 15, 16 threads, seed 1, merge on"
    assert settings["Sample"].startswith("3 train per label") and "judge" in settings["Feedback"]
    models = at.dataframe[0].value.set_index("role")
    assert list(models["model string"]) == list(notebook.NOTEBOOK_MODELS.values())  # the Databricks presets
    assert set(models["max_tokens"]) == {25000} and models.loc["Student", "reasoning effort"] == "medium"
    assert {m.label: m.value for m in at.metric}["Metric calls"] == "440"
    assert "optimize.start" not in buttons(at)  # the form is not shown beside the preset
    differences = texts(at, "warning")
    assert len(differences) == 1 and "Train file: " in differences[0] and "Budget" not in differences[0]
    assert "task_ref" not in differences[0] and "(the notebook: the Hugging Face file)" in differences[0]

    at.button(key="optimize.notebook.start").click().run()
    assert_clean(at)
    (job,) = JobManager(empty).list()
    expected = PRESET.config(PRESET.models(), task_ref=TaskRef(kind="pubmed", source=str(train), test_source=str(test)))
    assert job.kind == "notebook" and job.state == "queued" and at.session_state["optimize.notebook.job_id"] == job.id
    assert OptimizeConfig.from_dict(job.config["config"]) == expected
    assert NotebookModels(**{r: ModelSpec.from_dict(s) for r, s in job.config["models"].items()}) == PRESET.models()
    assert len(JobManager(empty).plan(job.id)["splits"]["test"]) == 50  # the plan shown is the plan run
    assert any(job.title in md for md in texts(at, "markdown"))  # its progress, on the page

    at.toggle(key="optimize.notebook.settings").set_value(False)
    at.selectbox(key="optimize.notebook.large").set_value("gpt-4o-mini").run()
    differences = texts(at, "warning")[0]
    assert ("Large baseline's model: openai/gpt-4o-mini (the notebook: databricks/databricks-gpt-oss-120b)"
            in differences)
    assert "Large baseline's max tokens: none (the notebook: 25000)" in differences


def test_without_the_hub_the_preset_says_so_and_how_to_use_local_files(empty, monkeypatch):
    monkeypatch.setattr("core.tasks.readers.PUBMED_HUB_URLS",  # an address that refuses, as an offline machine's hub
                        {"train": "http://127.0.0.1:9/train.csv", "test": "http://127.0.0.1:9/test.csv"})
    at = open_page("pages/optimize.py", {MODE: "notebook"})
    assert_clean(at)
    at.button(key="optimize.notebook.load").click().run()
    assert "The PubMed train split cannot be downloaded" in texts(at, "error")[0]
    assert any("Point the preset at local copies" in c for c in texts(at, "caption"))
    assert "optimize.notebook.start" not in buttons(at)


def test_the_form_starts_from_the_program_chosen(empty):
    at = open_page("pages/optimize.py", {**ROLES, "optimize.start_program": "own"})
    assert "Starting from your own instruction needs the instruction." in texts(at, "error")
    at.text_area(key="optimize.instruction").input("  Name the sentence's role.  ").run()
    at.button(key="optimize.start").click().run()
    assert_clean(at)
    config = OptimizeConfig.from_dict(JobManager(empty).get(at.session_state["optimize.job_id"]).config)
    assert (config.start, config.instruction) == ("own", "Name the sentence's role.")


@pytest.fixture
def copied(seeded, tmp_path, monkeypatch):
    """A copy of the seeded store (its runs get tags here) as the app's store: (seed, RunStore)."""
    data_dir = tmp_path / "copy"
    shutil.copytree(seeded.data_dir, data_dir)
    _env(monkeypatch, data_dir, tmp_path / "no-secrets.toml")
    from core.config.settings import load_settings

    return seeded, RunStore(load_settings().ensure())


def tag_reproduction(seed, store) -> None:
    """Tag the seeded runs as one reproduction of the notebook's experiment (the optimization and the baselines
    tagged bare; the evaluations without a start of their own, as older runs)."""
    sides = {seed.optimization_id: "optimization", seed.original_id: "student_original",
             seed.optimized_id: "student_optimized", seed.baseline_ids["stub-small"]: "large",
             seed.baseline_ids["stub-large"]: "frontier"}
    for run_id, side in sides.items():
        store.set_tags(run_id, {notebook.PRESET_TAG: "notebook", REPRODUCTION_TAG: "r1", SIDE_TAG: side,
                                **({START_TAG: "bare"} if side in ("optimization", "large", "frontier") else {})})


def test_compare_places_the_notebooks_claims_beside_the_reproduction(copied):
    seed, store = copied
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert "The notebook's claims beside this run" not in texts(at, "subheader")  # no run of the preset yet
    tag_reproduction(seed, store)
    st.cache_data.clear()
    at = open_page("pages/compare.py")
    assert_clean(at)
    assert "The notebook's claims beside this run" in texts(at, "subheader")
    claims = at.table[0].value
    assert list(claims.index) == [c.text for c in notebook.CLAIMS]
    accuracy = {r: store.get_run(r).data.metrics["accuracy"] for r in (seed.original_id, seed.optimized_id)}
    gain = (accuracy[seed.optimized_id] - accuracy[seed.original_id]) * 100
    assert claims["measured, points [95% CI]"].iloc[0].startswith(f"{gain:+.1f} [")
    assert set(claims["agrees?"].str.split(";").str[0]) <= set(AGREEMENT.values())
    sentence = next(c for c in texts(at, "caption") if c.startswith("Of the notebook's 3 claims"))
    assert sentence.endswith("(this run: student stub-small, large stub-small, frontier stub-large).")


def test_prompts_names_the_starting_program_of_each_program(copied):
    tag_reproduction(*copied)
    at = open_page("pages/prompts.py")
    assert_clean(at)
    began = [c for c in texts(at, "caption") if c.startswith("Began from")]
    assert began == ["Began from **bare**: DSPy's bare signature: the text field and the label field typed with the "
                     "labels, under DSPy's default instruction (as the original notebook started)."] * 2
