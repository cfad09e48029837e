import functools
import gzip
import http.server
import io
import threading
from pathlib import Path

import pandas as pd
import pytest

from core import tasks
from core.config.errors import ConfigError, DataError
from core.tasks import PUBMED_LABELS, Splits, Task, readers

FIXTURES = Path(__file__).parent.parent / "fixtures"
SMALL = FIXTURES / "data_small.csv"
RCT = FIXTURES / "data_rct_sample.txt"
HUB_LIKE = FIXTURES / "data_pubmed_hub.csv"


def _table(per_label: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{label} sentence number {i}.", label) for label, n in per_label.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["text", "label"])


def _task(labels=("a", "b", "c")) -> Task:
    return Task(name="t", text_column="text", label_column="label", labels=tuple(labels))


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over ``tmp_path``; yields (folder, base URL)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --- read_table: formats and sources ---


def test_read_csv_fixture():
    df = tasks.read_table(SMALL)
    assert list(df.columns) == ["review", "sentiment"]
    assert len(df) == 18
    assert df.loc[1, "review"] == "Friendly staff, quick service, fair prices."


def test_read_tsv_and_semicolon_detected(tmp_path):
    tsv = tmp_path / "t.txt"
    tsv.write_text("text\tlabel\nhello, world\ta\nbye\tb\n", encoding="utf-8")
    df = tasks.read_table(tsv)
    assert list(df.columns) == ["text", "label"] and df.loc[0, "text"] == "hello, world"
    semi = tmp_path / "s.csv"
    semi.write_text("text;label\nx, y;a\nz;b\n", encoding="utf-8")
    assert tasks.read_table(semi).loc[0, "text"] == "x, y"


def test_read_bytes_upload_and_file_object():
    raw = SMALL.read_bytes()
    from_bytes = tasks.read_table(raw, name="upload.csv")
    from_file = tasks.read_table(io.BytesIO(raw))
    pd.testing.assert_frame_equal(from_bytes, tasks.read_table(SMALL))
    pd.testing.assert_frame_equal(from_file, from_bytes)


def test_read_url_same_as_local(served):
    folder, base = served
    (folder / "small.csv").write_bytes(SMALL.read_bytes())
    pd.testing.assert_frame_equal(tasks.read_table(f"{base}/small.csv"), tasks.read_table(SMALL))
    with pytest.raises(DataError, match="HTTP 404"):
        tasks.read_table(f"{base}/missing.csv")


def test_read_gzip(tmp_path):
    path = tmp_path / "small.csv.gz"
    path.write_bytes(gzip.compress(SMALL.read_bytes()))
    pd.testing.assert_frame_equal(tasks.read_table(path), tasks.read_table(SMALL))


def test_read_utf8_bom(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nçà,a\n".encode())
    df = tasks.read_table(path)
    assert list(df.columns) == ["text", "label"] and df.loc[0, "text"] == "çà"


def test_parquet_round_trip(tmp_path):
    df = pd.DataFrame({"text": ["one", "two", "three"], "label": ["x", "y", "x"]})
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    back = tasks.read_table(path)
    assert back["text"].tolist() == df["text"].tolist() and back["label"].tolist() == df["label"].tolist()
    # Detected by magic bytes, not only by suffix.
    assert tasks.read_table(path.read_bytes(), name="upload").shape == (3, 2)


def test_rct_text_format():
    df = tasks.read_table(RCT)
    assert list(df.columns) == ["description", "target", "abstract_id"]
    assert len(df) == 9
    assert df["abstract_id"].tolist() == ["1001"] * 5 + ["1002"] * 4
    assert df.loc[0].tolist() == ["Sleep problems are common in shift workers .", "BACKGROUND", "1001"]
    assert set(df["target"]) == set(PUBMED_LABELS)


def test_rct_bad_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("###1\nBACKGROUND\tfine .\nno tab on this line\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3"):
        tasks.read_table(path)


# --- read_table: errors ---


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="File not found") as err:
        tasks.read_table(tmp_path / "nope.csv")
    assert "path" in err.value.hint


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="is empty"):
        tasks.read_table(path)


def test_header_only_has_no_rows(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="no data rows"):
        tasks.read_table(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\nok,a\ncaf\u00e9 cr\u00e8me,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8.*offset 19 \(line 3\)") as err:
        tasks.read_table(path)
    assert "UTF-8" in err.value.hint


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("text,label\na,b\nc,d,e\n", "Expected 2 fields in line 3, saw 3"),
        ('text,label\n"never closed,a\nb,c\n', "EOF inside string"),
    ],
)
def test_malformed_csv(tmp_path, content, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=f"not a well-formed CSV.*{pattern}") as err:
        tasks.read_table(path)
    assert "double quotes" in err.value.hint


def test_excel_rejected_with_hint():
    with pytest.raises(DataError, match="Excel") as err:
        tasks.read_table(b"PK\x03\x04rest-of-zip", name="sheet.xlsx")
    assert "CSV" in err.value.hint


def test_unreachable_url():
    with pytest.raises(DataError, match="Could not reach http://127.0.0.1:9/x.csv"):
        tasks.read_table("http://127.0.0.1:9/x.csv", timeout=2)


# --- validate_table / clean_table ---


def test_missing_column_names_it_and_lists_available():
    df = tasks.read_table(SMALL)
    with pytest.raises(DataError, match=r"no column 'label'.*'review', 'sentiment'"):
        tasks.validate_table(df, text_column="review", label_column="label")


def test_fewer_than_two_labels():
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "x", None]})
    with pytest.raises(DataError, match="1 distinct label"):
        tasks.validate_table(df, text_column="text", label_column="label")


def test_all_texts_empty():
    df = pd.DataFrame({"text": ["", "  ", None], "label": ["x", "y", "x"]})
    with pytest.raises(DataError, match="Every cell of the text column"):
        tasks.validate_table(df, text_column="text", label_column="label")


def test_warnings_and_cleaning(tmp_path):
    huge = "word " * 5000
    path = tmp_path / "messy.csv"
    path.write_text(
        "text,label\n"
        "  first  ,a\n"
        ",a\n"  # empty text
        "   ,b\n"  # blank text
        "second, b \n"  # spaced label
        "second,b\n"  # duplicate of the previous row once stripped
        "third,\n"  # missing label
        f"{huge},a\n",
        encoding="utf-8",
    )
    df = tasks.read_table(path)
    warnings = tasks.validate_table(df, text_column="text", label_column="label", max_text_chars=20_000)
    joined = "\n".join(warnings)
    assert "2 row(s) have an empty text" in joined
    assert "1 row(s) have no label" in joined
    assert "1 text(s) are longer than 20,000" in joined
    assert "1 duplicate row(s)" in joined

    cleaned = tasks.clean_table(df, text_column="text", label_column="label")
    assert cleaned["text"].tolist() == ["first", "second", huge.strip()]
    assert cleaned["label"].tolist() == ["a", "b", "a"]
    assert cleaned.index.tolist() == [0, 1, 2]


def test_clean_table_numeric_labels():
    df = pd.DataFrame({"text": ["a", "b", "c"], "label": [1.0, 0.0, float("nan")]})
    cleaned = tasks.clean_table(df, text_column="text", label_column="label")
    assert cleaned["label"].tolist() == ["1", "0"]


def test_clean_table_does_not_mutate_input():
    df = pd.DataFrame({"text": [" a "], "label": [" x "]})
    tasks.clean_table(df, text_column="text", label_column="label")
    assert df.loc[0, "text"] == " a "


def test_label_counts():
    counts = tasks.label_counts(_table({"b": 2, "a": 3}), "label")
    assert counts.to_dict("list") == {"label": ["a", "b"], "count": [3, 2]}


# --- tasks ---


def test_task_round_trip():
    task = tasks.pubmed_task("hub")
    again = Task.from_dict(task.to_dict())
    assert again == task and hash(again) == hash(task)
    assert isinstance(again.labels, tuple) and isinstance(again.label_descriptions[0], tuple)


def test_task_accepts_json_shapes():
    task = Task.from_dict(
        {
            "name": "t",
            "text_column": "x",
            "label_column": "y",
            "labels": ["p", "q"],
            "label_descriptions": {"p": "yes"},
            "unknown_key": 1,
        }
    )
    assert task.labels == ("p", "q") and task.label_descriptions == (("p", "yes"),)


@pytest.mark.parametrize(
    ("text_column", "label_column", "input_field", "output_field"),
    [
        ("Sentence Text", "Label", "sentence_text", "label"),
        ("1st col", "class", "col_1st_col", "class_"),
        ("Text", "text", "text", "text_label"),
        ("  ", "%%%", "text", "label"),
        ("Größe (cm)", "instructions", "groe_cm", "instructions_"),
        ("description", "target", "description", "target"),
    ],
)
def test_field_names_are_identifiers(text_column, label_column, input_field, output_field):
    task = Task(name="t", text_column=text_column, label_column=label_column, labels=("a", "b"))
    assert (task.input_field, task.output_field) == (input_field, output_field)
    assert task.input_field.isidentifier() and task.output_field.isidentifier()


def test_default_instruction():
    plain = tasks.default_instruction(_task())
    assert plain == "Classify the text into one of: a, b, c."
    pubmed = tasks.default_instruction(tasks.pubmed_task())
    assert pubmed.startswith("Classify the sentence into one of: BACKGROUND, OBJECTIVE, METHODS, RESULTS, CONCLUSIONS.")
    assert f"- METHODS: {tasks.PUBMED_LABEL_DESCRIPTIONS['METHODS']}" in pubmed


def test_table_task_labels_sorted_after_cleaning():
    df = tasks.read_table(SMALL)
    task = tasks.table_task(df, text_column="review", label_column="sentiment", name="reviews", source=str(SMALL))
    assert task.labels == ("negative", "neutral", "positive")
    assert task.source == str(SMALL) and task.instruction == ""


def test_table_task_one_label():
    df = pd.DataFrame({"text": ["a", "b"], "label": ["x", "x"]})
    with pytest.raises(DataError, match="at least 2"):
        tasks.table_task(df, text_column="text", label_column="label", name="t")


def test_demo():
    df = tasks.load_demo()
    assert list(df.columns) == ["description", "target"]
    assert tasks.label_counts(df, "target")["count"].tolist() == [60] * 5
    assert set(df["target"]) == set(PUBMED_LABELS)
    assert tasks.validate_table(df, text_column="description", label_column="target") == []
    task = tasks.demo_task()
    assert task.labels == PUBMED_LABELS and task.source == "demo"
    splits = tasks.make_splits(task, tasks.clean_table(df, text_column="description", label_column="target"))
    assert splits.sizes() == {"train": 15, "val": 0, "test": 50}


# --- PubMed ---


def test_load_pubmed_local_csv_drops_cln_and_normalizes_labels():
    df = tasks.load_pubmed("train", source=str(HUB_LIKE))
    assert list(df.columns) == ["description", "target"]
    assert df["target"].tolist() == [*PUBMED_LABELS, "BACKGROUND"]


def test_load_pubmed_local_rct_txt():
    df = tasks.load_pubmed("test", source=RCT)
    assert list(df.columns) == ["description", "target"] and len(df) == 9


def test_load_pubmed_reads_cache_without_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(readers, "_fetch_url", no_network)
    (tmp_path / "pubmed-train.csv").write_bytes(HUB_LIKE.read_bytes())
    df = tasks.load_pubmed("train", cache_dir=tmp_path)
    assert list(df.columns) == ["description", "target"] and len(df) == 6


def test_load_pubmed_downloads_once_then_caches(tmp_path, monkeypatch):
    calls = []

    def fake_fetch(url, timeout):
        calls.append(url)
        return HUB_LIKE.read_bytes()

    monkeypatch.setattr(readers, "_fetch_url", fake_fetch)
    first = tasks.load_pubmed("test", cache_dir=tmp_path / "cache")
    second = tasks.load_pubmed("test", cache_dir=tmp_path / "cache")
    assert calls == [readers.PUBMED_HUB_URLS["test"]]
    assert (tmp_path / "cache" / "pubmed-test.csv").is_file()
    pd.testing.assert_frame_equal(first, second)


def test_load_pubmed_from_url_source(served):
    folder, base = served
    (folder / "train.csv").write_bytes(HUB_LIKE.read_bytes())
    df = tasks.load_pubmed("train", source=f"{base}/train.csv", cache_dir=folder / "cache")
    pd.testing.assert_frame_equal(df, tasks.load_pubmed("train", source=HUB_LIKE))
    assert not (folder / "cache").exists()  # only the hub's own files are cached


def test_load_pubmed_unreachable_suggests_local_file(tmp_path):
    with pytest.raises(DataError, match="PubMed train split cannot be downloaded") as err:
        tasks.load_pubmed("train", source="http://127.0.0.1:9/train.csv", cache_dir=tmp_path, timeout=2)
    assert "train.txt" in err.value.hint and "demo" in err.value.hint
    assert not list(tmp_path.iterdir())


def test_load_pubmed_wrong_columns(tmp_path):
    with pytest.raises(DataError, match="no column 'description' or 'target'"):
        tasks.load_pubmed("train", source=SMALL)


# --- sampling ---


def test_one_stream_draw_is_pandas_groupby_sample_and_deterministic():
    """The default draw (one generator for all labels); the notebook's own draw is tested in test_notebook."""
    df = _table({"a": 20, "b": 15, "c": 12})
    first = tasks.sample_per_label(df, "label", 3, seed=42)
    again = tasks.sample_per_label(df, "label", 3, seed=42)
    other = tasks.sample_per_label(df, "label", 3, seed=7)
    grouped = df.groupby("label", group_keys=False).sample(n=3, random_state=42).reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, grouped)
    assert first["text"].tolist() != other["text"].tolist()
    assert first["label"].value_counts().to_dict() == {"a": 3, "b": 3, "c": 3}


def test_sample_per_label_too_few_rows():
    with pytest.raises(DataError, match=r"'b' has 2 row\(s\), fewer than the 3 per label") as err:
        tasks.sample_per_label(_table({"a": 5, "b": 2}), "label", 3, seed=0)
    assert "Lower the per-label size" in err.value.hint


def _keys(df: pd.DataFrame) -> set[str]:
    return set(df["text"])


def test_make_splits_disjoint_and_covering():
    df = _table({"a": 20, "b": 20, "c": 20, "ignored": 30})
    splits = tasks.make_splits(_task(), df, sample=tasks.SampleSpec(3, 2, 5, seed=1))
    assert isinstance(splits, Splits) and splits.seed == 1
    assert splits.sizes() == {"train": 9, "val": 6, "test": 15}
    assert not (_keys(splits.train) & _keys(splits.val))
    assert not (_keys(splits.train) & _keys(splits.test))
    assert not (_keys(splits.val) & _keys(splits.test))
    for part in (splits.train, splits.val, splits.test):
        assert set(part["label"]) == {"a", "b", "c"}
        assert part.index.tolist() == list(range(len(part)))
    again = tasks.make_splits(_task(), df, sample=tasks.SampleSpec(3, 2, 5, seed=1))
    pd.testing.assert_frame_equal(splits.test, again.test)


def test_make_splits_separate_test_table_matches_notebook():
    train_df, test_df = _table({"a": 10, "b": 10, "c": 10}), _table({"a": 12, "b": 12, "c": 12, "zzz": 5})
    test_df["text"] = "held-out " + test_df["text"]
    splits = tasks.make_splits(_task(), train_df, test_df, tasks.SampleSpec(3, 0, 10, seed=42))
    assert splits.val is None and splits.sizes() == {"train": 9, "val": 0, "test": 30}
    pd.testing.assert_frame_equal(splits.train, tasks.sample_per_label(train_df, "label", 3, 42))
    expected = tasks.sample_per_label(test_df[test_df["label"] != "zzz"], "label", 10, 42)
    pd.testing.assert_frame_equal(splits.test, expected)


def test_make_splits_separate_test_excludes_train_texts():
    train_df = _table({"a": 3, "b": 3})
    test_df = pd.concat([train_df, _table({"a": 2, "b": 2}).assign(text=lambda d: "new " + d["text"])])
    splits = tasks.make_splits(_task(("a", "b")), train_df, test_df, tasks.SampleSpec(3, 0, 2))
    assert not (_keys(splits.train) & _keys(splits.test))


def test_make_splits_too_few_rows_names_counts():
    with pytest.raises(DataError, match=r"'b' has 10 row\(s\), but train 3 \+ validation 0 \+ test 10 = 13"):
        tasks.make_splits(_task(("a", "b")), _table({"a": 20, "b": 10}))


def test_make_splits_too_few_test_rows():
    with pytest.raises(DataError, match=r"in the test table: 'a' has 4 row\(s\), fewer than the 10"):
        tasks.make_splits(
            _task(("a", "b")),
            _table({"a": 5, "b": 5}),
            _table({"a": 4, "b": 12}).assign(text=lambda d: "t " + d["text"]),
        )


def test_make_splits_label_missing_from_train():
    with pytest.raises(DataError, match="no rows for label"):
        tasks.make_splits(_task(("a", "b", "c")), _table({"a": 20, "b": 20}))


@pytest.mark.parametrize("sizes", [{"train_per_label": 0}, {"test_per_label": 0}, {"val_per_label": -1}])
def test_make_splits_rejects_bad_sizes(sizes):
    with pytest.raises(ConfigError, match="at least 1"):
        tasks.make_splits(_task(("a", "b")), _table({"a": 20, "b": 20}), None, tasks.SampleSpec(**sizes))
