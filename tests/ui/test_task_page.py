"""The Task page with awkward files: every file of the bad-file corpus gives a message (or loads), never a traceback;
label merging and dropping are choices on the page; notes about the test split are shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from core.tasks import PUBMED_LABELS, TaskRef
from tests.data.make_bad_files import BAD_DIR, CASES, Case, csv_bytes, rows
from tests.ui.conftest import assert_clean, open_page, texts


def _open_with_file(path: Path):
    """The Task page with ``path`` as the stored upload (as after an upload in an earlier run)."""
    upload = {"file_id": f"corpus-{path.name}", "filename": path.name, "path": str(path)}
    return open_page("pages/task.py", {"task.upload": upload,
                                       "task.ref": TaskRef(kind="file", source=str(path)).to_dict()})


def _no_crash(at) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not any("Something went wrong" in e for e in texts(at, "error")), texts(at, "error")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_file_on_the_task_page(case: Case, empty):
    at = _open_with_file(BAD_DIR / case.name)
    _no_crash(at)
    if case.expect == "error":
        shown = " ".join(texts(at, "error") + texts(at, "caption"))
        assert re.search(case.says, shown, re.S), shown
        assert at.session_state["task.ref"]["kind"] == "file"  # the stored choice is unchanged
        return
    assert_clean(at)
    assert any(s.startswith("Using **") for s in texts(at, "success")), texts(at, "success")
    warnings = texts(at, "warning")
    if case.expect == "warn":
        assert any(re.search(case.says, w, re.S) for w in warnings), warnings
    else:
        assert warnings == []


@pytest.mark.parametrize(("name", "content", "says"), [
    ("excel-unicode.csv", b"\xff\xfe" + csv_bytes(rows(), encoding="utf-16-le"), None),
    ("workbook.xlsx", (BAD_DIR / "sheet.xlsx").read_bytes(), "Excel or zip"),
])
def test_uploading_through_the_widget(empty, name, content, says):
    at = open_page("pages/task.py")
    at.radio(key="task.kind.w").set_value("file").run()
    at.file_uploader(key="task.file.w").set_value((name, content, "application/octet-stream")).run()
    _no_crash(at)
    if says is None:
        assert_clean(at)
        assert at.selectbox(key="task.file.label").value == "label"
        assert at.session_state["task.ref"]["label_column"] == "label"
    else:
        assert any(says in e for e in texts(at, "error")), texts(at, "error")


def test_similar_labels_are_an_error_until_merged_on_the_page(empty):
    at = _open_with_file(BAD_DIR / "label_case_collision.csv")
    _no_crash(at)
    assert any("spelled more than one way" in e and "'POSITIVE' (1 row)" in e for e in texts(at, "error"))
    assert at.checkbox(key="task.file.merge").label == "Merge lookalike labels"
    at.checkbox(key="task.file.merge").check().run()
    assert_clean(at)
    assert any("Merged 1 label(s)" in w for w in texts(at, "warning"))
    ref = at.session_state["task.ref"]
    assert ref["merge_similar_labels"] is True and ref["label_column"] == "label"
    assert any("over 2 labels" in s for s in texts(at, "success"))


def test_missing_value_labels_warn_and_can_be_dropped_on_the_page(empty):
    at = _open_with_file(BAD_DIR / "nan_like_labels.csv")
    assert_clean(at)
    assert any("missing-value marker" in w and "kept as classes" in w for w in texts(at, "warning"))
    assert any("over 7 labels" in s for s in texts(at, "success"))
    at.checkbox(key="task.file.dropna").check().run()
    assert_clean(at)
    assert any("will be dropped" in w for w in texts(at, "warning"))
    assert any("over 2 labels" in s for s in texts(at, "success"))
    assert at.session_state["task.ref"]["drop_missing_labels"] is True


def test_test_labels_absent_from_train_are_shown(empty, tmp_path):
    def write(path: Path, labels: tuple[str, ...], text: str) -> str:
        path.write_bytes(csv_bytes(rows(labels, text=text), header=["description", "target"]))
        return str(path)

    train = write(tmp_path / "train.csv", PUBMED_LABELS, "Train sentence {i} on {label}.")
    test = write(tmp_path / "test.csv", (*PUBMED_LABELS, "DISCUSSION"), "Test sentence {i} on {label}.")
    at = open_page("pages/task.py")
    at.radio(key="task.kind.w").set_value("pubmed").run()
    at.text_input(key="task.pubmed.source").input(train)
    at.text_input(key="task.pubmed.test").input(test)
    at.button(key="task.pubmed.load").click().run()
    assert_clean(at)
    assert any(w.startswith("15 test row(s) have a label that never appears in train: 'DISCUSSION' (15)")
               for w in texts(at, "warning")), texts(at, "warning")
    # The "all rows" chart counts both files, by table, and agrees with the page's count.
    available = {m.label: m.value for m in at.metric}["Rows available"]
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    counts = {trace["name"]: sum(int(t) for t in trace["text"]) for trace in spec["data"]}
    expected = {"train table": len(pd.read_csv(train)), "test table": len(pd.read_csv(test))}
    assert counts == expected and available == f"{sum(expected.values()):,}"
    assert f"All {available} rows per label (train and test tables)" in spec["layout"]["title"]["text"]
