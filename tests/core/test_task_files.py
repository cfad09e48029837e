"""Task files that go wrong: the bad-file corpus (tests/data/bad/), label spellings, missing-value markers, test
labels absent from train, capped messages, formula cells in exports, and any bytes at all (hypothesis)."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core import tasks
from core.analytics.export import neutralize_cell, neutralize_formulas, restore_cell, restore_formulas
from core.config.errors import DataError, StudioError
from core.tasks import SampleSpec, Task, TaskRef
from tests.data.make_bad_files import BAD_DIR, CASES, Case, csv_bytes, rows

MAX_MESSAGE = 1_000


def _load(path: Path, settings, **options) -> tuple[list[str], object]:
    """What the Task page does with a file: read, guess columns, validate, then load and sample as a job would."""
    df = tasks.read_table(path)
    text_column, label_column = tasks.guess_columns(df)
    warnings = tasks.validate_table(df, text_column=text_column, label_column=label_column, **options)
    ref = TaskRef(kind="file", source=str(path), text_column=text_column, label_column=label_column, **options)
    task, splits = tasks.prepare(ref, SampleSpec(), settings)
    return warnings, (task, splits)


# --- the corpus ---


def test_corpus_is_large_varied_and_matches_its_generator():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES) and len({c.problem for c in CASES}) == len(CASES)
    assert {"ok", "warn", "error"} <= {c.expect for c in CASES}
    on_disk = {p.name for p in BAD_DIR.iterdir() if p.is_file()}
    assert on_disk == {c.name for c in CASES}
    for case in CASES:
        rerun = f"{case.name}: rerun python -m tests.data.make_bad_files"
        assert (BAD_DIR / case.name).read_bytes() == case.make(), rerun


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_file_loads_or_says_what_is_wrong(case: Case, settings):
    path = BAD_DIR / case.name
    if case.expect == "error":
        with pytest.raises(StudioError) as err:
            _load(path, settings)
        message = str(err.value)
        assert len(message) < MAX_MESSAGE, message
        assert re.search(case.says, message, re.S), message
        assert err.value.hint, "every message says how to fix it"
        return
    warnings, (task, splits) = _load(path, settings)
    assert len(task.labels) >= 2 and splits.sizes()["test"] == 10 * len(task.labels)
    assert all(len(w) < MAX_MESSAGE for w in warnings), warnings
    if case.expect == "warn":
        assert any(re.search(case.says, w, re.S) for w in warnings), warnings
    else:
        assert warnings == []


def test_utf16_and_utf32_read_the_same_table_as_utf8():
    plain = tasks.read_table(BAD_DIR / "utf8_bom.csv")
    for name in ("utf16_le_bom.csv", "utf16_be_bom.csv", "utf32_le_bom.csv", "utf32_be_bom.csv", "utf16_le_no_bom.csv"):
        pd.testing.assert_frame_equal(tasks.read_table(BAD_DIR / name), plain, check_like=False)


def test_latin1_hint_is_only_given_for_latin1_text():
    with pytest.raises(DataError) as err:
        tasks.read_table(BAD_DIR / "latin1.csv")
    assert "Windows-1252" in str(err.value) and "iconv -f cp1252" in err.value.hint
    with pytest.raises(DataError) as err:
        tasks.read_table(BAD_DIR / "high_bytes_junk.csv")
    assert "Windows-1252" not in str(err.value) and "iconv" not in err.value.hint


def test_semicolon_file_with_a_comma_in_a_header_name_is_split_on_semicolons():
    for name in ("semicolon_quoted_comma_header.csv", "semicolon_unquoted_comma_header.csv"):
        df = tasks.read_table(BAD_DIR / name)
        assert list(df.columns) == ["review, full text", "label"], name
        assert set(df["label"]) == {"positive", "negative"}


def test_header_names_repeated_after_stripping_are_renamed_and_usable():
    df = tasks.read_table(BAD_DIR / "duplicate_header_after_strip.csv")
    assert list(df.columns) == ["text", "label", "label.1"]
    for label_column in ("label", "label.1"):
        assert tasks.validate_table(df, text_column="text", label_column=label_column)
    hand_made = pd.DataFrame([["a", "x", "y"], ["b", "y", "x"]], columns=["text", "label", "label"])
    with pytest.raises(DataError, match="2 columns named 'label'"):
        tasks.validate_table(hand_made, text_column="text", label_column="label")


def test_nested_parquet_columns_are_never_offered():
    df = tasks.read_table(BAD_DIR / "nested_columns.parquet")
    assert list(df.columns) == ["text", "label"]
    assert tasks.guess_columns(df) == ("text", "label")
    nested = pd.DataFrame({"words": [["a"], ["b"], ["c"]], "blob": ["one two three", "four five", "six"],
                           "cls": ["x", "y", "x"]})
    buf = io.BytesIO()
    nested.to_parquet(buf)
    df = tasks.read_table(buf.getvalue(), name="n.parquet")
    assert tasks.guess_columns(df) == ("blob", "cls")


def test_ids_picked_as_labels_give_a_short_message():
    with pytest.raises(DataError) as err:
        tasks.read_table(BAD_DIR / "ten_thousand_labels.csv").pipe(
            tasks.validate_table, text_column="text", label_column="order_id")
    assert len(str(err.value)) < 600 and "… and 9,995 more" in str(err.value)


def test_every_listing_in_messages_is_capped():
    many = pd.DataFrame({f"col{i}": ["v"] for i in range(5_000)})
    with pytest.raises(DataError) as err:
        tasks.validate_table(many, text_column="text", label_column="label")
    assert len(str(err.value)) < MAX_MESSAGE and "… and 4,980 more" in str(err.value)
    labels = tuple(f"id{i}" for i in range(10_000))
    table = pd.DataFrame({"text": [f"row {i}" for i in range(10_000)], "label": list(labels)})
    task = Task(name="ids", text_column="text", label_column="label", labels=labels)
    with pytest.raises(DataError) as err:
        tasks.make_splits(task, table)
    assert len(str(err.value)) < MAX_MESSAGE and "more" in str(err.value)
    with pytest.raises(DataError) as err:
        tasks.sample_per_label(table, "label", 2, seed=0)
    assert len(str(err.value)) < MAX_MESSAGE


# --- labels ---


def test_labels_spelled_two_ways_are_an_error_naming_the_groups(settings):
    path = BAD_DIR / "label_case_collision.csv"
    with pytest.raises(DataError) as err:
        tasks.load_tables(TaskRef(kind="file", source=str(path), text_column="text", label_column="label"), settings)
    assert "'positive' (13 rows), 'POSITIVE' (1 row) and 'Positive' (1 row) look alike" in str(err.value)
    assert "--merge-labels" in err.value.hint and "'Merge lookalike labels'" in err.value.hint


def test_merging_similar_labels_keeps_the_most_frequent_spelling(settings):
    path = BAD_DIR / "label_zero_width_collision.csv"
    df = tasks.read_table(path)
    warnings = tasks.validate_table(df, text_column="text", label_column="label", merge_similar_labels=True)
    assert any("Merged 1 label(s)" in w and "→ 'positive'" in w for w in warnings)
    ref = TaskRef(kind="file", source=str(path), text_column="text", label_column="label", merge_similar_labels=True)
    task, train, _ = tasks.load_tables(ref, settings)
    assert task.labels == ("negative", "positive")
    assert train["label"].value_counts().to_dict() == {"positive": 15, "negative": 15}


def test_a_task_cannot_hold_two_spellings_of_one_label():
    with pytest.raises(DataError, match="'Positive' / 'positive'"):
        Task(name="t", text_column="text", label_column="label", labels=("Positive", "positive", "neg"))
    with pytest.raises(DataError, match="spaces or invisible"):
        Task(name="t", text_column="text", label_column="label", labels=("a\u200bb", "ab"))


def test_missing_value_markers_warn_and_can_be_dropped(settings):
    path = BAD_DIR / "nan_like_labels.csv"
    df = tasks.read_table(path)
    warnings = tasks.validate_table(df, text_column="text", label_column="label")
    assert any("75 row(s)" in w and "'N/A' (15)" in w and "'-' (15)" in w for w in warnings)
    kept = tasks.load_tables(TaskRef(kind="file", source=str(path), text_column="text", label_column="label"), settings)
    assert set(kept[0].labels) == {"positive", "negative", "NaN", "null", "None", "N/A", "-"}
    notes = tasks.validate_table(df, text_column="text", label_column="label", drop_missing_labels=True)
    assert any("75 row(s) labelled with a missing-value marker" in n and "dropped" in n for n in notes)
    assert not any("kept as classes" in n for n in notes)
    drop = TaskRef(kind="file", source=str(path), text_column="text", label_column="label", drop_missing_labels=True)
    task, train, _ = tasks.load_tables(drop, settings)
    assert task.labels == ("negative", "positive") and len(train) == 30


# --- test labels absent from train ---


def _write(path: Path, table: list[list[str]]) -> str:
    path.write_bytes(csv_bytes(table))
    return str(path)


def test_test_labels_absent_from_train_are_counted_not_dropped_silently(tmp_path, settings):
    train = _write(tmp_path / "train.csv", rows(("positive", "negative")))
    test = _write(tmp_path / "test.csv", rows(("Positive", "negative"), text="Held-out {i} {label}.")
                  + rows(("neutral",), 4, text="Held-out {i} {label}."))
    ref = TaskRef(kind="file", source=train, test_source=test, text_column="text", label_column="label")
    task, splits = tasks.prepare(ref, SampleSpec(), settings)
    assert splits.sizes()["test"] == 10
    absent, missing = splits.notes
    assert absent.startswith("19 test row(s) have a label that never appears in train: 'Positive' (15), 'neutral' (4)")
    assert "'Positive' (train: 'positive')" in absent and "--merge-labels" in absent
    assert missing.startswith("The test table has no rows for 1 label(s) ('positive')")
    assert {absent, missing} <= set(tasks.check_task(ref, settings))
    merged = TaskRef(**{**ref.to_dict(), "merge_similar_labels": True})
    _, splits = tasks.prepare(merged, SampleSpec(), settings)
    assert splits.sizes()["test"] == 20
    assert splits.notes == ("4 test row(s) have a label that never appears in train: 'neutral' (4); they are left "
                            "out of the test split.",)


def test_a_test_file_sharing_no_label_with_train_is_an_error(tmp_path, settings):
    train = _write(tmp_path / "train.csv", rows(("positive", "negative")))
    test = _write(tmp_path / "test.csv", rows(("good", "bad")))
    ref = TaskRef(kind="file", source=train, test_source=test, text_column="text", label_column="label")
    with pytest.raises(DataError, match="None of the test table's labels appear in train"):
        tasks.prepare(ref, SampleSpec(), settings)


def test_a_task_label_missing_from_the_test_file_is_a_note(tmp_path, settings):
    train = _write(tmp_path / "train.csv", rows(("positive", "negative", "neutral")))
    test = _write(tmp_path / "test.csv", rows(("positive", "negative"), text="Held-out {i} {label}."))
    ref = TaskRef(kind="file", source=train, test_source=test, text_column="text", label_column="label")
    _, splits = tasks.prepare(ref, SampleSpec(), settings)
    assert splits.notes == ("The test table has no rows for 1 label(s) ('neutral'); the test split leaves them out.",)
    assert tasks.Splits.from_dict(splits.to_dict()).notes == splits.notes


# --- formula cells in exports ---


def test_exported_csv_neutralises_formula_cells_but_not_numbers():
    df = pd.DataFrame({"text": ['=HYPERLINK("http://x","y")', "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "fine",
                                "-1", "+0.5", None],
                       "n": [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10]})
    out = neutralize_formulas(df)
    assert out["text"].tolist()[:7] == ["'" + v for v in df["text"][:6]] + ["fine"]
    assert out["text"].tolist()[7:9] == ["-1", "+0.5"] and pd.isna(out["text"].iloc[9])
    assert out["n"].tolist() == df["n"].tolist()
    assert df["text"].iloc[0].startswith("=")  # the input is not modified
    confusion = pd.DataFrame([[1, 0], [0, 1]], index=["=a", "b"], columns=["=a", "b"])
    assert neutralize_formulas(confusion).to_csv().splitlines()[:2] == [",'=a,b", "'=a,1,0"]


@hsettings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("'=+-@\t\r0123456789.eE xa")), max_size=12))
def test_neutralised_cells_restore_exactly(value):
    written = neutralize_cell(value)
    assert restore_cell(written) == value
    assert not str(written).startswith(("=", "+", "-", "@", "\t", "\r")) or re.fullmatch(r"[+-][0-9.eE+-]*", written)


def test_neutralised_table_restores_exactly():
    df = pd.DataFrame({"text": ["=1+1", "'=quoted", "'", "-", "ok", None], "n": [1, 2, 3, 4, 5, 6]},
                      index=["=i", "b", "c", "d", "e", "f"])
    pd.testing.assert_frame_equal(restore_formulas(neutralize_formulas(df)), df)


def test_records_csv_logged_to_the_store_has_no_live_formula(store):
    run_id = store.start_run("baseline", "formula", run_name="formula")
    records = pd.DataFrame({"text": ['=HYPERLINK("http://evil.example","click")', "plain"], "gold": ["a", "b"]})
    store.log_artifacts(run_id, {"records.csv": records})
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(store.download(run_id, "records.csv", tmp)).read_text(encoding="utf-8")
    cells = [cell for row in csv.reader(io.StringIO(raw)) for cell in row]
    assert "'=HYPERLINK(\"http://evil.example\",\"click\")" in cells
    assert not any(cell.startswith(("=", "+", "@")) for cell in cells)


# --- any bytes at all ---

_PREFIXES = (b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00", b"PAR1", b"\x1f\x8b\x08\x00",
             b"PK\x03\x04", b"text,label\n", b"###1\nMETHODS\t", b'"a,b";c\n')
_TEXTISH = st.text(alphabet=st.sampled_from(list('ab,;|\t\n\r" \'=-xNaN\x00\u200b\u00e9')),
                   max_size=300).map(str.encode)


@hsettings(max_examples=150, deadline=5_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(_PREFIXES), body=st.one_of(st.binary(max_size=400), _TEXTISH),
       suffix=st.sampled_from([".csv", ".tsv", ".txt", ".parquet", ".gz", ".xlsx", ""]))
def test_any_bytes_load_or_raise_a_studio_error(prefix, body, suffix, settings, tmp_path):
    path = tmp_path / f"any{suffix}"
    path.write_bytes(prefix + body)
    try:
        df = tasks.read_table(path)
        text_column, label_column = tasks.guess_columns(df)
        tasks.validate_table(df, text_column=text_column, label_column=label_column)
        tasks.load_tables(TaskRef(kind="file", source=str(path), text_column=text_column,
                                  label_column=label_column), settings)
    except StudioError as err:
        assert len(str(err)) < MAX_MESSAGE
