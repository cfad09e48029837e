"""What was saved before tasks had fields (records, tasks, references, sample specs, saved programs) loads and reads
exactly as it did: classification runs keep accuracy, Wilson's interval and McNemar's verdict."""

import json

import pandas as pd

from core.analytics import stats
from core.analytics.verdict import verdict
from core.evaluation.records import aggregate, read_records
from core.program.program import program_from_dict
from core.tasks import SampleSpec, Task, TaskRef

# One line of records.jsonl as an evaluation wrote it before scores (no score, field_scores or feedback).
OLD_RECORD = {"idx": 0, "text": "We randomised 40 adults.", "gold": "METHODS", "predicted": "METHODS", "correct": True,
              "outcome": "correct", "raw_output": None, "latency_s": 0.2, "queue_s": 0.0, "input_tokens": 50,
              "output_tokens": 3, "cost_usd": 0.0001, "cached": False, "calls": 1, "attempts": 1, "error": None,
              "error_kind": None, "cached_calls": 0, "spent_usd": 0.0001}
LABELS = ("BACKGROUND", "METHODS", "RESULTS")
# A program.json as save_program wrote it for a classification task (format 1).
OLD_PROGRAM = {"format": 1, "task": {"name": "demo", "text_column": "description", "label_column": "target",
                                     "labels": list(LABELS), "label_descriptions": [], "instruction": "",
                                     "source": "demo"},
               "module": "predict", "instruction": "Classify the sentence.",
               "state": {"demos": [], "signature": {"instructions": "Classify the sentence.", "fields": []},
                         "lm": None, "traces": [], "train": []}}


def _old_records(tmp_path, flags):
    path = tmp_path / "records.jsonl"
    lines = []
    for i, ok in enumerate(flags):
        rec = dict(OLD_RECORD, idx=i, predicted="METHODS" if ok else "RESULTS", correct=ok,
                   outcome="correct" if ok else "wrong")
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return read_records(path)


def test_old_records_read_with_a_score_equal_to_their_accuracy(tmp_path):
    flags = [True] * 7 + [False] * 3
    records = _old_records(tmp_path, flags)
    assert records["score"].isna().all()
    metrics, per_label, confusion = aggregate(records, LABELS)
    assert metrics["accuracy"] == metrics["score"] == 0.7
    assert (metrics["score_ci_low"], metrics["score_ci_high"]) == stats.wilson_interval(7, 10)
    assert (metrics["accuracy_ci_low"], metrics["accuracy_ci_high"]) == stats.wilson_interval(7, 10)
    assert metrics["partial"] == 0 and not per_label.empty and not confusion.empty


def test_old_records_get_mcnemars_verdict_word_for_word(tmp_path):
    a_flags = [True] * 4 + [False] * 16
    b_flags = [True] * 14 + [False] * 6
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a, b = _old_records(tmp_path / "a", a_flags), _old_records(tmp_path / "b", b_flags)
    v = verdict(a, b, "the original", "The optimized program")
    c = stats.compare_paired(a_flags, b_flags, "the original", "The optimized program")
    assert v.sentence == c["sentence"] and v.test == "exact McNemar" and v.metric == "accuracy"
    assert (v.ci_low, v.ci_high, v.p_value) == (c["ci_low"], c["ci_high"], c["p_value"])


def test_old_tasks_references_samples_and_programs_load_as_classification():
    task = Task.from_dict(OLD_PROGRAM["task"])
    assert task.is_classification and task.input_names == ("description",) and task.output_names == ("target",)
    assert task.to_dict() == OLD_PROGRAM["task"]
    ref = TaskRef.from_dict({"kind": "file", "source": "x.csv", "test_source": "", "text_column": "t",
                             "label_column": "l", "name": "", "merge_similar_labels": False,
                             "drop_missing_labels": False})
    assert ref.fields == ""
    assert SampleSpec.from_dict({"train_per_label": 3, "val_per_label": 0, "test_per_label": 10, "seed": 42,
                                 "method": "one_stream"}).stratify == ""
    program, loaded = program_from_dict(OLD_PROGRAM)
    assert loaded == task and program.signature.instructions == "Classify the sentence."
    assert list(program.signature.output_fields) == ["target"]


def test_a_records_csv_from_before_compares_by_accuracy_even_when_asked_for_scores(tmp_path):
    flags = [True, False] * 5
    records = pd.DataFrame(_old_records(tmp_path, flags)).drop(columns=["score", "field_scores", "feedback"])
    v = verdict(records, records, "a", "b", metric="token F1")
    assert v.accuracy_a == v.accuracy_b == 0.5 and v.test == "exact McNemar"
