"""The Task page's "your own DSPy program" (#24): with GEPA_STUDIO_PROGRAMS_DIR set, a program picked from the folder
is checked in a child process (this process never loads it), its predictors shown, its input and answer mapped to
the table's columns, and the task saved with the same fields JSON as the command line's --program; a broken file's
own lines are shown; a saved program outside the folder is refused; without the folder no program is offered; the
Optimize and Baselines pages keep a program's own predictors and offer the component selector."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import streamlit as st

from core.tasks import SampleSpec, TaskRef
from tests.ui.conftest import assert_clean, open_page, texts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "programs" / "extract_then_classify.py"
DEMO = ROOT / "core" / "demo_data" / "demo_sentences.csv"
SMALL = SampleSpec(2, 0, 2).to_dict()
CHILD_S = 60  # a check loads DSPy in a child process: a few seconds, more on a busy machine


@pytest.fixture
def programs(tmp_path, monkeypatch) -> Path:
    """The operator's folder, holding a copy of the example pipeline; the data: a copy of the demo sentences."""
    folder = tmp_path / "programs"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / "extract_then_classify.py")
    shutil.copy(DEMO, tmp_path / "sentences.csv")
    monkeypatch.setenv("GEPA_STUDIO_PROGRAMS_DIR", str(folder))
    return folder


def upload(path: Path) -> dict[str, str]:
    return {"file_id": f"t-{path.name}", "filename": path.name, "path": str(path)}


def on_program(path: Path, ref: TaskRef | None = None):
    """The Task page with ``path`` as the stored upload, in the "your own program" mode."""
    at = open_page("pages/task.py", {"task.upload": upload(path), "task.sample": SMALL,
                                     "task.ref": (ref or TaskRef(kind="file", source=str(path))).to_dict()},
                   timeout=CHILD_S)
    return at.radio(key="task.file.mode").set_value("program").run()


def loaded(folder: Path) -> list[str]:
    """The modules of this process loaded from a file in ``folder`` (the page must load none)."""
    return [name for name, module in list(sys.modules.items())
            if str(getattr(module, "__file__", None) or "").startswith(str(folder.resolve()))]


def fields(at) -> dict:
    return json.loads(at.session_state["task.ref"]["fields"] or "{}")


def assert_predictors_shown(at) -> None:
    """What the child process found: both predictors, their kinds, fields and instructions, and the identity."""
    assert any("2 predictor(s)" in s and "identity" in s for s in texts(at, "success")), texts(at, "success")
    shown = at.dataframe[0].value  # the predictors (the page shows no other table yet)
    assert list(shown["predictor"]) == ["extract.predict", "classify"]
    assert list(shown["kind"]) == ["ChainOfThought", "Predict"]
    assert list(shown["fields"]) == ["sentence -> reasoning, finding", "sentence, finding -> label"]
    assert shown["instruction"][1].startswith("Label the sentence")


def test_a_program_from_the_folder_is_checked_apart_mapped_and_saved_as_the_cli_would(empty, programs, tmp_path):
    data = tmp_path / "sentences.csv"
    at = on_program(data)
    assert_clean(at)
    assert not loaded(programs)
    assert at.selectbox(key="task.program.file").options == ["extract_then_classify.py"]
    assert at.selectbox(key="task.program.name").options == ["ExtractThenClassify", "make_program"]
    assert any("Check program" in i for i in texts(at, "info"))
    assert at.session_state["task.ref"]["fields"] == ""  # nothing is used until the program is checked
    at.selectbox(key="task.program.name").set_value("make_program").run()
    at.selectbox(key="task.program.function").set_value("extract_then_classify.py:metric").run()
    at.button(key="task.program.check").click().run()
    assert_clean(at)
    assert_predictors_shown(at)
    assert not loaded(programs)  # loaded only in the child process
    assert at.selectbox(key="task.program.in.sentence").value is None  # no column is called "sentence"
    at.selectbox(key="task.program.in.sentence").set_value("description").run()
    at.selectbox(key="task.program.out.label").set_value("target").run()
    assert_clean(at)
    assert at.selectbox(key="task.program.kind.target").value == "label"
    folder_file = (programs / "extract_then_classify.py").resolve()
    saved = fields(at)
    assert saved["inputs"] == [{"column": "description", "field": "sentence"}]
    assert saved["outputs"] == [{"column": "target", "field": "label", "kind": "label"}]
    assert saved["program"] == f"{folder_file}:make_program" and saved["metric"] == f"{folder_file}:metric"
    assert saved["program_predictors"] == ["extract.predict", "classify"]
    assert saved["program_sha"] == hashlib.sha256(folder_file.read_bytes()).hexdigest()
    assert at.session_state["task.ref"]["source"] == str(data)
    assert any(s.startswith("Using **sentences**") and "your metric" in s for s in texts(at, "success"))
    assert any("2 predictor(s): extract.predict, classify" in c for c in texts(at, "caption"))
    assert "task.fields.save" not in [b.key for b in at.get("download_button")]  # a task file names no program

    # A new session (a reload): the pickers start from the saved program, which stays selected until checked again.
    again = open_page("pages/task.py", {"task.upload": upload(data), "task.sample": SMALL,
                                        "task.ref": at.session_state["task.ref"]}, timeout=CHILD_S)
    assert again.radio(key="task.file.mode").value == "program"
    assert again.selectbox(key="task.program.name").value == "make_program"
    assert any("Check program" in i for i in texts(again, "info"))
    assert fields(again) == saved  # still selected until checked again

    # A task file's columns feed it the same way (what the check found is kept: the same program needs none).
    (tmp_path / "roles.toml").write_text('name = "roles"\ndata = "sentences.csv"\n\n[[inputs]]\ncolumn = '
                                         '"description"\n\n[[outputs]]\ncolumn = "target"\nkind = "label"\n',
                                         encoding="utf-8")
    at.radio(key="task.kind.w").set_value("taskfile").run()
    at.text_input(key="task.taskfile.path").input(str(tmp_path / "roles.toml")).run()
    assert at.session_state["task.ref"]["kind"] == "taskfile" and not at.session_state["task.ref"]["fields"]
    at.toggle(key="task.program.on_task_file").set_value(True).run()
    at.selectbox(key="task.program.name").set_value("make_program").run()
    at.selectbox(key="task.program.function").set_value("extract_then_classify.py:metric").run()
    at.selectbox(key="task.program.in.sentence").set_value("description").run()
    at.selectbox(key="task.program.out.label").set_value("target").run()
    assert_clean(at)
    assert at.session_state["task.ref"]["kind"] == "taskfile" and fields(at) == saved


def test_a_broken_program_shows_its_own_lines_and_one_outside_the_folder_is_refused(empty, programs, tmp_path):
    (programs / "broken.py").write_text("import dspy\n\n\ndef make_program():\n    return dspy.Predict('q -> a')\n\n\n"
                                        "raise RuntimeError('the key file is missing')\n", encoding="utf-8")
    data = tmp_path / "sentences.csv"
    at = on_program(data)
    at.selectbox(key="task.program.file").set_value("broken.py").run()
    at.button(key="task.program.check").click().run()
    assert any("RuntimeError: the key file is missing" in e for e in texts(at, "error")), texts(at, "error")
    assert any("line 8" in c and "raise RuntimeError" in c for c in texts(at, "code")), texts(at, "code")

    outside = tmp_path / "elsewhere.py"
    shutil.copy(EXAMPLE, outside)
    linked = TaskRef(kind="file", source=str(data), fields=json.dumps({
        "inputs": [{"column": "description", "field": "sentence"}],
        "outputs": [{"column": "target", "field": "label", "kind": "label"}],
        "program": f"{outside}:make_program", "program_sha": "0" * 64, "program_predictors": ["a", "b"]}))
    at = on_program(data, linked)
    assert any("outside the programs folder" in e for e in texts(at, "error")), texts(at, "error")
    picked = at.selectbox(key="task.program.file")
    assert picked.options == ["broken.py", "extract_then_classify.py"] and picked.value == "broken.py"  # not it


def test_without_the_folder_no_program_is_offered(empty, tmp_path, monkeypatch):
    monkeypatch.delenv("GEPA_STUDIO_PROGRAMS_DIR", raising=False)
    shutil.copy(DEMO, tmp_path / "sentences.csv")
    data = tmp_path / "sentences.csv"
    at = open_page("pages/task.py", {"task.upload": upload(data), "task.sample": SMALL,
                                     "task.ref": TaskRef(kind="file", source=str(data)).to_dict()})
    assert_clean(at)
    assert at.radio(key="task.file.mode").options == ["Classify: one text column -> one label",
                                                      "Any task: input columns -> typed outputs"]
    assert any("GEPA_STUDIO_PROGRAMS_DIR" in c and "docs/programs.md" in c for c in texts(at, "caption"))
    st.cache_resource.clear()


def program_ref(data: Path, file: Path) -> TaskRef:
    """A task run on the example pipeline in ``file``, as the Task page saves it."""
    return TaskRef(kind="file", source=str(data), name="sentences", fields=json.dumps({
        "inputs": [{"column": "description", "field": "sentence"}],
        "outputs": [{"column": "target", "field": "label", "kind": "label"}],
        "program": f"{file.resolve()}:make_program", "program_sha": hashlib.sha256(file.read_bytes()).hexdigest(),
        "program_predictors": ["extract.predict", "classify"]}))


def test_optimize_keeps_the_programs_predictors_and_offers_the_component_selector(empty, programs, tmp_path):
    from core.jobs import JobManager
    from core.optimize.config import COMPONENT_SELECTORS

    session = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5", "task.sample": SMALL,
               "task.ref": program_ref(tmp_path / "sentences.csv", programs / "extract_then_classify.py").to_dict()}
    at = open_page("pages/optimize.py", session)
    assert_clean(at)
    selector = at.segmented_control(key="optimize.component_selector")
    assert selector.options == list(COMPONENT_SELECTORS) and selector.value == "round_robin"
    assert all(v in selector.help for v in COMPONENT_SELECTORS.values())
    keys = [c.key for c in at.segmented_control]
    assert "optimize.module" not in keys and "optimize.start_program" not in keys
    assert any(c.startswith("Your program keeps its own predictors and instructions") for c in texts(at, "caption"))
    selector.set_value("all").run()
    at.button(key="optimize.start").click().run()
    assert_clean(at)
    (job,) = JobManager(empty).list()
    assert job.config["component_selector"] == "all" and job.config["module"] == "predict"
    assert json.loads(job.config["task_ref"]["fields"])["program_predictors"] == ["extract.predict", "classify"]

    demo = open_page("pages/optimize.py", {k: v for k, v in session.items() if k != "task.ref"})
    assert "optimize.component_selector" not in [c.key for c in demo.segmented_control]
    assert "optimize.module" in [c.key for c in demo.segmented_control]

    at.segmented_control(key="optimize.optimizer").set_value("own").run()  # no prompt of yours replaces its own
    assert any("keeps its own predictors" in i for i in texts(at, "info"))
    assert "optimize.own_instruction" not in [t.key for t in at.text_area]


def test_baselines_keep_the_programs_predictors_and_refuse_one_outside_the_folder(empty, programs, tmp_path):
    data = tmp_path / "sentences.csv"
    session = {"models.compare": ["gpt-4o-mini"], "task.sample": SMALL,
               "task.ref": program_ref(data, programs / "extract_then_classify.py").to_dict()}
    at = open_page("pages/baselines.py", session)
    assert_clean(at)
    assert "baselines.module" not in [c.key for c in at.segmented_control]
    assert any("Your program keeps its own predictors and instructions" in c for c in texts(at, "caption"))
    assert not at.button(key="baselines.start").disabled

    outside = tmp_path / "elsewhere.py"
    shutil.copy(EXAMPLE, outside)
    at = open_page("pages/baselines.py", {**session, "task.ref": program_ref(data, outside).to_dict()})
    assert any("outside the programs folder" in e for e in texts(at, "error")), texts(at, "error")
    assert at.button(key="baselines.start").disabled
