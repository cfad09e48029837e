"""Tables that are whole (issue 21): an optimizer or a task source added at run time as one entry in its table shows
in the CLI's help and choices, the page's picker and the run labels, with no other edit."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pandas as pd
import pytest

from core.cli.main import build_parser
from core.lm.models import openai_compatible
from core.optimize import OPTIMIZERS, OptimizeConfig, Words
from core.optimize.optimizers import OWN
from core.tasks import SOURCES, SampleSpec, TaskRef
from core.tasks.sources import TaskSource
from core.tracking import runs as run_table
from tests.core.test_runs import runs
from tests.ui.conftest import _env, fresh_data_dir, open_page
from tests.ui.conftest import fresh_streamlit_caches as fresh_streamlit_caches  # the page tests' own fixtures
from tests.ui.conftest import navigation_as_in_a_running_server as navigation_as_in_a_running_server
from tests.ui.conftest import no_job_processes as no_job_processes
from tests.ui.conftest import template_db as template_db

FAKE = replace(OWN, name="fake", label="Fake search", instruction_needed="", presets=("light",),
               words=Words(summary="Fake search: a test's optimizer, one table entry", does="It searches nothing.",
                           budget="Fake budget.", cancel="never", record="Fake search keeps no record."))


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.fixture
def fake_optimizer(monkeypatch):
    monkeypatch.setitem(OPTIMIZERS, "fake", FAKE)
    return FAKE


def test_a_new_optimizer_is_one_entry(fake_optimizer):
    # The CLI: a choice of --optimizer, described in its help.
    optimize = subparser(build_parser(), "optimize")
    option = next(a for a in optimize._actions if "--optimizer" in a.option_strings)
    assert "fake" in option.choices and "Fake search: a test's optimizer" in option.help
    # A config of it checks itself by its entry, and reads its label and budget from it.
    student = openai_compatible("pupil", "pupil", "http://127.0.0.1:9/v1")
    config = OptimizeConfig(task_ref=TaskRef(), sample=SampleSpec(), student=student, reflection=None,
                            optimizer="fake")
    assert config.title("demo") == "Fake search pupil · demo · light"
    # The run table: an optimization made by it, and the evaluation of the program it made.
    frame = runs({"run_id": "o", "kind": "optimization", "program": "fake", "model": "pupil", "budget": "light",
                  "status": "FINISHED", "task": "demo", "start_time": pd.Timestamp("2026-01-01")},
                 {"run_id": "e", "kind": "evaluation", "program": "optimized", "optimizer": "fake", "model": "pupil",
                  "accuracy": 0.5, "n": 10, "parent_run_id": "o", "task": "demo"})
    assert run_table.optimization_frame(frame).iloc[0]["run_label"].startswith("Fake search · pupil · light")
    assert run_table.chart_frame(frame).iloc[0]["label"].endswith("optimized by Fake search")


def test_a_new_optimizer_shows_in_the_optimize_pages_picker(fake_optimizer, tmp_path, monkeypatch, template_db):
    _env(monkeypatch, fresh_data_dir(tmp_path, template_db), tmp_path / "no-secrets.toml")
    at = open_page("pages/optimize.py", {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"})
    picker = at.segmented_control(key="optimize.optimizer")
    assert "fake" in picker.options or "Fake search" in picker.options, picker.options
    picker.set_value("fake").run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("It searches nothing." in c for c in (str(c.value) for c in at.caption))
    assert at.segmented_control(key="optimize.budget").options == ["light"]


def test_a_new_task_source_is_one_entry(monkeypatch, tmp_path, template_db):
    fake = TaskSource("fakesrc", "Fake source", "A test's task source.", "a test's source, one table entry",
                      SOURCES["demo"].load)
    monkeypatch.setitem(SOURCES, "fakesrc", fake)
    optimize = subparser(build_parser(), "optimize")
    task = next(a for a in optimize._actions if "--task" in a.option_strings)
    assert "'fakesrc': a test's source, one table entry" in task.help
    _env(monkeypatch, fresh_data_dir(tmp_path, template_db), tmp_path / "no-secrets.toml")
    at = open_page("pages/task.py")
    assert "Fake source" in at.radio[0].options, at.radio[0].options
