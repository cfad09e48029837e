"""Labels that look alike (issue 20, item 8): a right-to-left override shown as another label, invisible characters,
numbers spelled more than one way; one merge option on the Task page and the command line (--merge-labels,
--drop-missing); errors that name the file they found the problem in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core import tasks
from core.cli.common import task_ref
from core.cli.main import build_parser
from core.config.errors import DataError
from core.tasks import SampleSpec, TaskRef
from tests.data.make_bad_files import BAD_DIR
from tests.scenario import make_table

ROOT = Path(__file__).resolve().parents[2]
RLO = "\u202e"


def _csv(path: Path, counts: dict[str, int], text: str = "Review {i} of a {label!r} experience.") -> str:
    rows = [(text.format(i=i, label=label), label) for label, n in counts.items() for i in range(n)]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return str(path)


def _ref(source: str, test_source: str = "", **options: bool) -> TaskRef:
    return TaskRef(kind="file", source=source, test_source=test_source, text_column="text", label_column="label",
                   **options)


@pytest.mark.parametrize("mark", ["\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u200f", "\u200b",
                                  "\u200d", "\ufeff", "\u00ad"])
def test_an_invisible_or_bidi_character_makes_a_lookalike(mark):
    assert tasks.lookalike_key(f"neg{mark}") == tasks.lookalike_key("neg")
    assert tasks.lookalike_key(f"ne{mark}g") == tasks.lookalike_key("neg")


def test_a_right_to_left_override_is_compared_as_shown():
    # "\u202egen" is shown as "neg": the old key saw "gen", a class of its own.
    assert tasks.lookalike_key(f"{RLO}gen") == tasks.lookalike_key("neg")
    assert tasks.lookalike_key(f"{RLO}gen\u202c") == tasks.lookalike_key("neg")
    assert tasks.lookalike_key("gen") != tasks.lookalike_key("neg")


def test_numbers_spelled_more_than_one_way_look_alike():
    assert len({tasks.lookalike_key(v) for v in ("1", "1.0", "01", "+1", "1.", "1e0", "\uff11")}) == 1
    assert len({tasks.lookalike_key(v) for v in ("1", "-1", "10", "0.1", "11")}) == 5
    assert tasks.lookalike_key("0") == tasks.lookalike_key("-0") == tasks.lookalike_key("0.00")


def test_rtl_lookalike_is_a_counted_error_naming_both_spellings_and_the_file(tmp_path, settings):
    path = _csv(tmp_path / "reviews.csv", {"neg": 40, f"neg{RLO}": 3, "pos": 40})
    with pytest.raises(DataError) as err:
        tasks.load_tables(_ref(path), settings)
    message = str(err.value)
    assert "labels 'neg' (40 rows) and 'neg\\u202e' shown as 'neg' (3 rows) look alike" in message
    assert f"Column 'label' of {path} has 1 label(s)" in message
    assert "'Merge lookalike labels'" in err.value.hint and "--merge-labels" in err.value.hint

    shown_as = _csv(tmp_path / "override.csv", {"neg": 40, f"{RLO}gen": 3, "pos": 40})
    with pytest.raises(DataError, match=r"'\\u202egen' shown as 'neg' \(3 rows\)"):
        tasks.load_tables(_ref(shown_as), settings)


def test_merging_rtl_lookalikes_through_the_loader_option(tmp_path, settings):
    path = _csv(tmp_path / "override.csv", {"neg": 40, f"{RLO}gen": 3, "pos": 40})
    ref = _ref(path, merge_similar_labels=True)
    warnings = tasks.check_task(ref, settings)
    assert any("Merged 1 label(s)" in w and "(3 row(s) respelled)" in w and "→ 'neg'" in w for w in warnings), warnings
    task, train, _ = tasks.load_tables(ref, settings)
    assert task.labels == ("neg", "pos")
    assert train["label"].value_counts().to_dict() == {"neg": 43, "pos": 40}


def test_numeric_spellings_are_a_counted_warning_and_merge_into_the_most_frequent(tmp_path, settings):
    path = _csv(tmp_path / "scores.csv", {"1": 40, "1.0": 3, "01": 2, "0": 40})
    warnings = tasks.check_task(_ref(path), settings)
    [warning] = [w for w in warnings if "look alike" in w]
    assert f"Column 'label' of {path} has 1 label(s) spelled as more than one number" in warning
    assert "(5 row(s) in the less frequent spellings)" in warning
    assert "labels '1' (40 rows), '1.0' (3 rows) and '01' (2 rows) look alike" in warning
    assert "--merge-labels" in warning and "'Merge lookalike labels'" in warning
    task, _, _ = tasks.load_tables(_ref(path), settings)
    assert task.labels == ("0", "01", "1", "1.0")  # without the option they stay classes, as the warning says

    task, train, _ = tasks.load_tables(_ref(path, merge_similar_labels=True), settings)
    assert task.labels == ("0", "1") and train["label"].value_counts().to_dict() == {"1": 45, "0": 40}


def test_a_clash_only_in_the_test_file_names_the_test_file(tmp_path, settings):
    train = _csv(tmp_path / "train.csv", {"neg": 20, "pos": 20})
    test = _csv(tmp_path / "held_out.csv", {"neg": 12, f"{RLO}gen": 3, "pos": 15}, text="Held-out {i} {label!r}.")
    ref = _ref(train, test)
    for load in (tasks.load_tables, tasks.check_task):
        with pytest.raises(DataError) as err:
            load(ref, settings)
        assert f"Column 'label' of {test} has 1 label(s)" in str(err.value)
        assert train not in str(err.value)
    task, splits = tasks.prepare(_ref(train, test, merge_similar_labels=True), SampleSpec(), settings)
    assert splits.sizes()["test"] == 20 and set(splits.test["label"]) == {"neg", "pos"}


def test_test_labels_that_look_like_train_labels_are_named_and_aligned_by_the_merge(tmp_path, settings):
    train = _csv(tmp_path / "train.csv", {"1": 20, "0": 20})
    test = _csv(tmp_path / "test.csv", {"1.0": 12, "0": 12}, text="Held-out {i} {label!r}.")
    _, splits = tasks.prepare(_ref(train, test), SampleSpec(), settings)
    assert any("'1.0' (train: '1')" in n and "--merge-labels" in n for n in splits.notes), splits.notes
    _, splits = tasks.prepare(_ref(train, test, merge_similar_labels=True), SampleSpec(), settings)
    assert splits.test["label"].value_counts().to_dict() == {"0": 10, "1": 10}
    only_lookalikes = _csv(tmp_path / "other.csv", {"1.0": 12, "+0": 12})
    with pytest.raises(DataError) as err:
        tasks.prepare(_ref(train, only_lookalikes), SampleSpec(), settings)
    assert f"the test table {only_lookalikes} has" in str(err.value)


def test_the_cli_flags_are_the_loader_options(settings):
    def ref(*flags: str) -> TaskRef:
        args = build_parser().parse_args(["baseline", "--task", str(BAD_DIR / "nan_like_labels.csv"),
                                          "--text-column", "text", "--label-column", "label", *flags])
        return task_ref(args)

    assert ref().merge_similar_labels is False and ref().drop_missing_labels is False
    both = ref("--merge-labels", "--drop-missing")
    assert both.merge_similar_labels is True and both.drop_missing_labels is True
    kept = tasks.check_task(ref(), settings)
    assert any("missing-value marker" in w and "--drop-missing" in w and "TaskRef" not in w for w in kept), kept
    task, train, _ = tasks.load_tables(ref("--drop-missing"), settings)
    assert task.labels == ("negative", "positive") and len(train) == 30
    pubmed = task_ref(build_parser().parse_args(["baseline", "--task", "pubmed", "--merge-labels"]))
    assert pubmed.kind == "pubmed" and pubmed.merge_similar_labels is True


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


@pytest.mark.slow
def test_baseline_on_the_command_line_says_and_takes_its_own_flags(stub, settings, tmp_path):
    table = make_table(12)
    results = table.index[table["target"] == "RESULTS"]
    table.loc[results[:2], "target"] = f"{RLO}STLUSER"  # shown as "RESULTS"
    table = pd.concat([table, pd.DataFrame({"description": ["Unlabelled one.", "Unlabelled two."],
                                            "target": ["NA", "N/A"]})])
    path = tmp_path / "rct.csv"
    table.to_csv(path, index=False)
    args = ["baseline", "--task", str(path), "--models", f"openai/stub-small@{stub.base_url}",
            "--train-per-label", "2", "--test-per-label", "4", "-q"]
    out = _cli(*args)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"of {path} has 1 label(s)" in out.stderr and "shown as 'RESULTS' (2 rows)" in out.stderr
    assert "--merge-labels" in out.stderr and "TaskRef" not in out.stderr
    out = _cli(*args, "--merge-labels", "--drop-missing")
    assert out.returncode == 0, out.stderr
    assert "Merged 1 label(s)" in out.stderr and "2 row(s) labelled with a missing-value marker" in out.stderr
    assert out.stdout.splitlines()[1].split()[1] == "100.0%"
