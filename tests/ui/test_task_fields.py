"""The Task page beyond classification: a shipped task needs nothing picked; an uploaded table read as "any task"
(inputs, typed outputs, their metrics) shows its signature and one example's full prompt; a number column holding
text names the row; a judge without a rubric is refused; own metric functions come only from GEPA_STUDIO_METRICS_DIR
(listed without running them); a task file loaded onto the table fills the pickers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import streamlit as st

from core.tasks import SOURCES, SampleSpec, TaskRef
from tests.ui.conftest import assert_clean, open_page, texts

SMALL = SampleSpec(2, 0, 4).to_dict()
QA = [(f"{name} keeps {n} {animal} on a farm near {town}.", f"How many {animal} does {name} keep?", f"{n} {animal}")
      for name, animal, town, n in zip(["Ann", "Bob", "Cai", "Dee", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jon"],
                                       ["goats", "hens", "cows", "pigs", "ducks", "sheep", "geese", "bees", "mules",
                                        "yaks"],
                                       ["Leeds", "Hull", "York", "Bath", "Ely", "Wells", "Ripon", "Truro", "Derby",
                                        "Stoke"], range(2, 12), strict=True)]


def write(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def any_task(path: Path):
    """The Task page with ``path`` as the stored upload, switched to "Any task"."""
    upload = {"file_id": f"t-{path.name}", "filename": path.name, "path": str(path)}
    at = open_page("pages/task.py", {"task.upload": upload, "task.sample": SMALL,
                                     "task.ref": TaskRef(kind="file", source=str(path)).to_dict()})
    return at.radio(key="task.file.mode").set_value("fields").run()


def fields(at) -> dict:
    return json.loads(at.session_state["task.ref"]["fields"] or "{}")


def test_a_shipped_task_needs_nothing_picked_and_shows_its_prompt(empty):
    at = open_page("pages/task.py", {"task.sample": SMALL})
    at.radio(key="task.kind.w").set_value("extract").run()
    assert_clean(at)
    assert SOURCES["extract"].description in texts(at, "caption")
    assert at.session_state["task.ref"]["kind"] == "extract"
    assert any(s.startswith("Using **extract**") and "scored by " in s and "token F1" in s
               for s in texts(at, "success")), texts(at, "success")
    assert "Sample (rows in all)" in texts(at, "subheader") and at.selectbox(key="task.stratify").value == ""
    signature, prompt = texts(at, "code")
    assert signature == "sentence: str -> drug: str, dose: str, condition: str"
    sentences = [row["sentence"] for row in csv.DictReader(open(Path(SOURCES["extract"].load.keywords["path"]).parent
                                                                / "data.csv", encoding="utf-8"))]
    assert "=== system ===" in prompt and "[[ ## dose ## ]]" in prompt
    assert any(s in prompt.split("=== user ===")[1] for s in sentences)  # the whole prompt of one real row


def test_any_task_on_an_uploaded_table_shows_its_signature_prompt_and_metric(empty, tmp_path):
    at = any_task(write(tmp_path / "qa.csv", ["context", "question", "answer"], QA))
    assert_clean(at)
    assert at.multiselect(key="task.fields.inputs").value == ["context", "question"]
    assert at.multiselect(key="task.fields.outputs").value == ["answer"]
    assert (at.selectbox(key="task.fields.kind.answer").value, at.selectbox(key="task.fields.metric.answer").value) \
        == ("text", "f1")
    signature, prompt = texts(at, "code")
    assert signature == "context: str, question: str -> answer: str"
    user = prompt.split("=== user ===")[1]
    assert "[[ ## context ## ]]" in user and any(q in user and c in user for c, q, _ in QA)
    assert any("scored by token F1" in s for s in texts(at, "success"))
    assert fields(at)["inputs"] == [{"column": "context"}, {"column": "question"}]
    assert at.session_state["task.ref"]["kind"] == "file" and at.session_state["task.ref"]["name"] == "qa"
    at.selectbox(key="task.fields.metric.answer").set_value("exact").run()
    assert_clean(at)
    assert fields(at)["outputs"] == [{"column": "answer", "kind": "text", "metric": "exact"}]
    assert any("scored by exact match" in s for s in texts(at, "success"))


def test_a_number_output_takes_a_tolerance_and_a_cell_of_text_names_its_row(empty, tmp_path):
    rows = [(f"{n} apples and {n + 1} pears: how many fruits?", str(2 * n + 1), str(2 * n + 1)) for n in range(10)]
    rows[2] = (rows[2][0], rows[2][1], "about five")
    at = any_task(write(tmp_path / "sums.csv", ["problem", "answer", "guess"], rows))
    at.multiselect(key="task.fields.inputs").set_value(["problem"]).run()
    at.multiselect(key="task.fields.outputs").set_value(["answer"]).run()
    assert at.selectbox(key="task.fields.kind.answer").value == "number"  # every cell is a number
    at.text_input(key="task.fields.tol.answer").input("0.5").run()
    assert_clean(at)
    assert fields(at)["outputs"] == [{"column": "answer", "kind": "number", "metric": "numeric:0.5"}]
    assert any("scored by numeric (±0.5)" in s for s in texts(at, "success"))
    assert texts(at, "code")[0] == "problem: str -> answer: float"

    at.multiselect(key="task.fields.outputs").set_value(["answer", "guess"]).run()
    assert at.selectbox(key="task.fields.kind.guess").value == "text"  # a cell of text: read as text, it loads
    assert_clean(at)
    kept = dict(at.session_state["task.ref"])
    at.selectbox(key="task.fields.kind.guess").set_value("number").run()
    assert any("'guess'" in e and "row 3 holds text: 'about five'" in e for e in texts(at, "error")), \
        texts(at, "error")
    assert at.session_state["task.ref"] == kept  # the task in use stays the last one that loaded


def test_a_judge_needs_a_rubric(empty, tmp_path):
    at = any_task(write(tmp_path / "qa.csv", ["context", "question", "answer"], QA))
    at.radio(key="task.fields.scoring").set_value("judge").run()
    assert "The judge has no rubric." in texts(at, "error")
    assert fields(at)["metric"] == ""  # not taken
    at.text_area(key="task.fields.rubric").input("1 when the answer names the number and the animal.").run()
    at.text_input(key="task.fields.judge_name").input("count").run()
    assert_clean(at)
    assert (fields(at)["metric"], fields(at)["judge"]["name"]) == ("judge", "count")
    assert any("scored by judge: count" in s for s in texts(at, "success"))
    assert any("Judge model" in c and "Baselines" in c for c in texts(at, "caption"))


def test_own_functions_are_listed_from_the_configured_folder_without_running_them(empty, tmp_path, monkeypatch):
    table = write(tmp_path / "qa.csv", ["context", "question", "answer"], QA)
    at = any_task(table)
    at.radio(key="task.fields.scoring").set_value("function").run()
    assert any("GEPA_STUDIO_METRICS_DIR" in i for i in texts(at, "info")), texts(at, "info")

    folder, ran = tmp_path / "metrics", tmp_path / "ran.txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "scores.py").write_text(f"open({str(ran)!r}, 'w').write('ran')\n\n"
                                      "def close(example, prediction):\n    return 1.0\n\n"
                                      "def _hidden(example, prediction):\n    return 0.0\n\n"
                                      "def one_argument(example):\n    return 0.0\n", encoding="utf-8")
    (folder / "sub" / "more.py").write_text("def same_words(example, prediction):\n    return 0.5\n", encoding="utf-8")
    (folder / "broken.py").write_text("def nope(:\n", encoding="utf-8")
    monkeypatch.setenv("GEPA_STUDIO_METRICS_DIR", str(folder))
    st.cache_resource.clear()  # the settings are read again
    at.run()
    picker = at.selectbox(key="task.fields.function")
    assert picker.options == ["scores.py:close", "sub/more.py:same_words"]
    picker.set_value("sub/more.py:same_words").run()
    assert_clean(at)
    assert fields(at)["metric"] == f"{(folder / 'sub' / 'more.py').resolve()}:same_words"
    assert any("scored by same_words (your function)" in s for s in texts(at, "success"))
    assert not ran.exists()  # listing a folder never runs its files


def test_a_loaded_task_file_fills_the_pickers(empty, tmp_path):
    at = any_task(write(tmp_path / "qa.csv", ["context", "question", "answer"], QA))
    toml = ('name = "farm"\ndata = "elsewhere.csv"\n\n[[inputs]]\ncolumn = "question"\ndescription = "a question"\n\n'
            '[[outputs]]\ncolumn = "answer"\nkind = "text"\nmetric = "exact"\ndescription = "the number and animal"\n')
    at.file_uploader(key="task.fields.load").set_value(("farm.toml", toml.encode(), "application/toml")).run()
    assert_clean(at)
    assert at.multiselect(key="task.fields.inputs").value == ["question"]
    assert at.selectbox(key="task.fields.metric.answer").value == "exact"
    assert at.text_input(key="task.fields.name").value == "farm"
    assert fields(at)["outputs"] == [{"column": "answer", "kind": "text", "metric": "exact",
                                      "description": "the number and animal"}]
    assert texts(at, "code")[0] == "question: str -> answer: str"
    assert "the number and animal" in texts(at, "code")[1]  # the description reaches the prompt

    wrong = toml.replace('column = "question"', 'column = "query"')
    at.file_uploader(key="task.fields.load").set_value(("wrong.toml", wrong.encode(), "application/toml")).run()
    assert any("lacks: 'query'" in e for e in texts(at, "error")), texts(at, "error")


def test_baselines_of_a_judged_task_take_the_judge_model(empty, monkeypatch):
    from core.jobs import JobManager

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-judge-key")  # no call is made: jobs stay queued here
    session = {"task.ref": TaskRef(kind="rewrite").to_dict(), "task.sample": SMALL, "models.compare": ["gpt-4o-mini"]}
    at = open_page("pages/baselines.py", session)
    assert at.selectbox(key="baselines.judge.w").value is None  # no reflection model chosen: none to start from
    at.button(key="baselines.start").click().run()
    assert any("scored by an LLM judge" in e and "judge model" in e for e in texts(at, "error")), texts(at, "error")
    session["models.reflection"] = "gpt-4.1-mini"
    assert open_page("pages/baselines.py", session).selectbox(key="baselines.judge.w").value == "gpt-4.1-mini"
    at.selectbox(key="baselines.judge.w").set_value("gpt-4o-mini").run()
    at.button(key="baselines.start").click().run()
    jobs = JobManager(empty).list()
    assert len(jobs) == 1 and jobs[0].config["judge"]["name"] == "gpt-4o-mini"
    demo = open_page("pages/baselines.py")  # the demo (classification): no judge to pick
    assert "baselines.judge.w" not in [w.key for w in demo.selectbox]


def test_a_task_file_on_the_server_loads_and_its_function_must_be_in_the_folder(empty, tmp_path):
    at = open_page("pages/task.py", {"task.sample": SMALL})
    at.radio(key="task.kind.w").set_value("taskfile").run()
    assert any("path of a task file" in i for i in texts(at, "info"))
    shipped = Path(SOURCES["qa"].load.keywords["path"])
    at.text_input(key="task.taskfile.path").input(str(shipped)).run()
    assert_clean(at)
    assert at.session_state["task.ref"] == TaskRef(kind="taskfile", source=str(shipped), name="qa").to_dict()
    assert texts(at, "code")[0] == "context: str, question: str -> answer: str"

    own = tmp_path / "own.toml"
    own.write_text(shipped.read_text(encoding="utf-8").replace('metric = ""', f'metric = "{tmp_path}/m.py:fn"', 1)
                   .replace('data = "data.csv"', f'data = "{shipped.parent / "data.csv"}"'), encoding="utf-8")
    (tmp_path / "m.py").write_text("def fn(example, prediction):\n    return 1.0\n", encoding="utf-8")
    at.text_input(key="task.taskfile.path").input(str(own)).run()
    assert any("your function" in e and "may load none" in e for e in texts(at, "error")), texts(at, "error")
    assert at.session_state["task.ref"]["source"] == str(shipped)  # still the last task that could be used
