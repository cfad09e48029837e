"""core.scoring: the field metrics (against hand-worked cases, SQuAD's own script and properties), the scorer that
combines them, and the user's own metric functions."""

from __future__ import annotations

import math
import re
import string
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config.errors import ConfigError, DataError
from core.scoring import FIELD_METRICS, load_function, make_scorer, metric_label, parse_metric
from core.scoring.fields import parse_number, token_f1
from core.tasks.fields import JudgeSpec, OutputSpec

METRICS = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"
TEXT = OutputSpec("answer")
NUMBER = OutputSpec("amount", kind="number")
LABEL = OutputSpec("sentiment", kind="label", labels=("positive", "negative", "neutral"))
TAGS = OutputSpec("tags", kind="labels", labels=("red", "green", "blue"))
JSON = OutputSpec("record", kind="json")
FAST = settings(max_examples=150, deadline=None)


def score(metric: str, gold, predicted, spec=TEXT) -> float:
    name, param = parse_metric(metric)
    value, feedback = FIELD_METRICS[name].score(gold, predicted, spec, param)
    assert isinstance(feedback, str) and feedback
    return value


# SQuAD v1.1's official evaluate script (evaluate-v1.1.py), copied as the oracle -------------------------------


def squad_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def squad_f1_score(prediction, ground_truth):
    prediction_tokens = squad_normalize_answer(prediction).split()
    ground_truth_tokens = squad_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


WORDY = st.lists(st.sampled_from(list("abtheanc xyz.,!'-") + ["the ", "an ", "A ", "The", "é", "\t", "7"]),
                 max_size=25).map("".join)


@FAST
@given(WORDY, WORDY)
def test_token_f1_is_squads_except_that_two_empty_answers_agree(gold, predicted):
    both_empty = not squad_normalize_answer(gold) and not squad_normalize_answer(predicted)
    assert token_f1(gold, predicted) == (1.0 if both_empty else squad_f1_score(predicted, gold))


def test_token_f1_by_hand():
    assert token_f1("the cat sat", "Cat sat down.") == pytest.approx(0.8)  # p = 2/3, r = 1
    assert token_f1("x b b", "b") == pytest.approx(0.5)  # multiset: p = 1, r = 1/3
    assert (token_f1("", ""), token_f1("the", "an"), token_f1("x", ""), token_f1("", "x")) == (1.0, 1.0, 0.0, 0.0)


# Each metric by hand -------------------------------------------------------------------------------------------


def test_exact_reads_labels_as_classification_does():
    assert score("exact", "positive", "**Positive**.", LABEL) == 1.0
    assert score("exact", "positive", "negative", LABEL) == 0.0
    value, feedback = FIELD_METRICS["exact"].score("positive", "great!", LABEL, None)
    assert value == 0.0 and "names none of the labels" in feedback


def test_exact_text_numbers_and_sets():
    assert score("exact", "The Eiffel Tower!", "eiffel   tower") == 1.0
    assert score("exact", "Eiffel Tower", "Eiffel Towers") == 0.0
    assert score("exact", "1.0", " 1 ") == 1.0 and score("exact", "route 66", "route 66.0") == 0.0
    assert score("exact", 1234, "$1,234.00", NUMBER) == 1.0
    assert score("exact", "red;blue", ["Blue", "RED"], TAGS) == 1.0 and score("exact", "red;blue", "red", TAGS) == 0.0
    assert score("exact", '{"a": 1}', {"a": "1"}, JSON) == 1.0 and score("exact", '{"a": 1}', {"a": 2}, JSON) == 0.0


def test_numeric_reads_the_last_number_in_what_people_write():
    cases = {"1,234": 1234, "$12.50": 12.5, "12 %": 12, "The answer is 42.": 42, "from 3 to -4": -4,
             "2020-2021": 2021, "1e3": 1000, "\u22125": -5, ".5": 0.5, 7: 7, 2.5: 2.5}
    assert {k: parse_number(k) for k in cases} == cases
    assert [parse_number(v) for v in ("no number", "", None, True, math.nan)] == [None] * 5


@pytest.mark.parametrize(("metric", "gold", "predicted", "expected"), [
    ("numeric", 42, "The answer is 42.", 1.0),
    ("numeric", 42, "42.0000001", 0.0),  # default: exact (1e-9)
    ("numeric:0.01", "1.00", "1.01", 1.0),  # the edge is inside despite binary floats
    ("numeric:0.01", "1.00", "0.99", 1.0),
    ("numeric:0.01", "1.00", "1.0101", 0.0),
    ("numeric:1%", 200, "202", 1.0),
    ("numeric:1%", 200, "197.99", 0.0),
    ("numeric:1%", -200, "-202", 1.0),
    ("numeric:1%", 0, "0.000001", 0.0),  # relative to 0 is exact
    ("numeric:0", 3, "3", 1.0),
])
def test_numeric_tolerance_edges(metric, gold, predicted, expected):
    assert score(metric, gold, predicted, NUMBER) == expected


def test_numeric_without_a_number():
    value, feedback = FIELD_METRICS["numeric"].score(5, "I don't know", NUMBER, None)
    assert value == 0.0 and "No number" in feedback
    with pytest.raises(DataError, match="'n/a'.*holds no number"):
        FIELD_METRICS["numeric"].score("n/a", "5", NUMBER, None)


def test_parse_metric():
    assert parse_metric("f1") == ("f1", None) and parse_metric(" Numeric : 0.5 ") == ("numeric", 0.5)
    _, rel = parse_metric("numeric:2.5%")
    _, absolute = parse_metric("numeric:0.01")
    assert (rel, rel.relative, absolute.relative) == (pytest.approx(0.025), True, False)
    for bad, match in (("bleu", "Unknown field metric"), ("numeric:abc", "not a number"), ("numeric:-1", "0 or more"),
                       ("numeric:nan", "not a number"), ("exact:0.1", "takes no parameter")):
        with pytest.raises(ConfigError, match=match) as err:
            parse_metric(bad)
        assert err.value.hint


def test_setf1_by_hand():
    assert score("setf1", "red;green", "red", TAGS) == pytest.approx(2 / 3)
    assert score("setf1", '["red", "green"]', "Green | RED", TAGS) == 1.0
    assert score("setf1", "red;green", "red, green", TAGS) == 1.0  # a comma list of labels
    assert score("setf1", "red", ["red", "purple"], TAGS) == pytest.approx(2 / 3)
    assert score("setf1", "", [], TAGS) == 1.0 and score("setf1", "", "red", TAGS) == 0.0
    value, feedback = FIELD_METRICS["setf1"].score("red;green", "red;blue", TAGS, None)
    assert value == 0.5 and "missing: green" in feedback and "not expected: blue" in feedback
    assert score("setf1", "A;b", "a | B ", TEXT) == 1.0  # no label set: case and spacing still ignored


def test_json_by_hand():
    gold = '{"drug": "Aspirin", "dose": 100, "unit": "mg"}'
    assert score("json", gold, {"drug": "aspirin", "dose": "100", "unit": "mg"}, JSON) == 1.0
    assert score("json", gold, '```json\n{"drug": "aspirin", "dose": 100.0, "unit": "mg"}\n```', JSON) == 1.0
    value, feedback = FIELD_METRICS["json"].score(gold, '{"drug": "aspirin", "dose": 50}', JSON, None)
    assert value == pytest.approx(1 / 3) and "wrong: dose, unit" in feedback and "missing: unit" in feedback
    keyed = OutputSpec("record", kind="json", keys=("drug",))
    assert score("json", gold, {"drug": "ASPIRIN", "dose": 1}, keyed) == 1.0
    value, feedback = FIELD_METRICS["json"].score(gold, "[1, 2]", JSON, None)
    assert value == 0.0 and "not a JSON object" in feedback
    assert score("json", {"a": [1, {"b": "x"}]}, {"a": [1.0, {"b": "X"}]}, JSON) == 1.0
    with pytest.raises(DataError, match="'not json'"):
        FIELD_METRICS["json"].score("not json", "{}", JSON, None)


# Properties ----------------------------------------------------------------------------------------------------

ANY_TEXT = st.text(max_size=30)
LABELISH = st.sampled_from(["red", "Green", " BLUE ", "purple", "red;blue", "", "green | red", '["blue"]', "*red*"])


@FAST
@given(st.sampled_from(["exact", "f1", "setf1"]), ANY_TEXT | LABELISH, ANY_TEXT | LABELISH,
       st.sampled_from([TEXT, LABEL, TAGS]))
def test_every_metric_is_in_zero_one(metric, gold, predicted, spec):
    assert 0.0 <= score(metric, gold, predicted, spec) <= 1.0


@FAST
@given(st.floats(allow_nan=False, allow_infinity=False, width=32), ANY_TEXT, st.sampled_from(["numeric", "numeric:1%",
                                                                                                "numeric:0.5"]))
def test_numeric_is_in_zero_one(gold, predicted, metric):
    assert score(metric, gold, predicted, NUMBER) in (0.0, 1.0)
    assert score(metric, gold, repr(gold), NUMBER) == 1.0


@FAST
@given(st.dictionaries(st.sampled_from("abc"), st.integers(-3, 3) | ANY_TEXT, max_size=3),
       st.dictionaries(st.sampled_from("abcd"), st.integers(-3, 3) | ANY_TEXT, max_size=4))
def test_json_is_in_zero_one(gold, predicted):
    assert 0.0 <= score("json", gold, predicted, JSON) <= 1.0
    assert score("json", gold, dict(gold), JSON) == 1.0


NO_DIGITS = WORDY.filter(lambda s: not any(c.isdigit() for c in s))  # numbers compare as numbers (tested by hand)


@FAST
@given(NO_DIGITS, NO_DIGITS)
def test_exact_is_one_iff_equal_after_normalising(gold, predicted):
    same = squad_normalize_answer(gold) == squad_normalize_answer(predicted)
    assert (score("exact", gold, predicted) == 1.0) == same


@FAST
@given(ANY_TEXT, ANY_TEXT)
def test_f1_is_symmetric(a, b):
    assert score("f1", a, b) == pytest.approx(score("f1", b, a))


@FAST
@given(st.lists(st.sampled_from(["red", "green", "blue", "teal"]), max_size=4),
       st.lists(st.sampled_from(["RED", "green", " Blue", "teal"]), max_size=4))
def test_setf1_is_one_iff_the_sets_are_equal(gold, predicted):
    same = {g.strip().lower() for g in gold} == {p.strip().lower() for p in predicted}
    assert (score("setf1", ";".join(gold), predicted, TAGS) == 1.0) == same


# The scorer ----------------------------------------------------------------------------------------------------

DRUG, DOSE = OutputSpec("Drug"), OutputSpec("dose", kind="number", metric="numeric:1%", weight=3)


def test_several_fields_score_their_weighted_mean_with_a_line_each():
    scorer = make_scorer((DRUG, DOSE))
    assert scorer.name == "weighted: drug token F1, dose numeric (±1%) ×3"
    s = scorer({"text": "..."}, {"drug": "the aspirin", "dose": "100"}, {"drug": "aspirin tablets", "dose": "101 mg"})
    assert dict(s.fields) == {"drug": pytest.approx(2 / 3), "dose": 1.0}
    assert s.value == pytest.approx((2 / 3 + 3) / 4) and s.outcome == "partial"
    lines = s.feedback.splitlines()
    assert lines[0].startswith("drug: expected 'the aspirin', predicted 'aspirin tablets'. Token F1 0.67")
    assert lines[1] == "dose: correct."
    gone = scorer({}, {"drug": "x", "dose": "5"}, {"drug": "x", "dose": None})
    assert gone.value == pytest.approx(0.25) and "dose: gave no dose; expected '5'." in gone.feedback


def test_one_metric_for_every_field_and_long_values_cut():
    scorer = make_scorer((DRUG, OutputSpec("note")), metric="exact")
    assert scorer.name == "exact match, mean of drug, note"
    s = scorer({}, {"drug": "a" * 1000, "note": "ok"}, {"drug": "b" * 1000, "note": "OK!"})
    assert s.value == 0.5 and len(s.feedback) < 900 and "aaa..." in s.feedback
    assert make_scorer((DRUG,))({}, {"drug": "x"}, {"drug": "X."}).outcome == "correct"


def test_metric_labels():
    assert [metric_label((spec,)) for spec in (TEXT, NUMBER, LABEL, TAGS, JSON)] == [
        "token F1", "numeric", "exact match", "set F1", "JSON field match"]
    assert metric_label((NUMBER,), "numeric:0.01") == "numeric (±0.01)"
    assert metric_label((TEXT, NUMBER), "judge", JudgeSpec("be kind", name="tone")) == "judge: tone"
    assert metric_label((TEXT,), "my metrics/m.py:grade") == "grade (your function)"


def test_bad_scorers_are_refused_at_build():
    for kwargs, match in (({"metric": "bleu"}, "Unknown field metric"), ({"metric": "judge"}, "rubric and a judge"),
                          ({"metric": "judge", "judge": JudgeSpec("r")}, "judge model")):
        with pytest.raises(ConfigError, match=match):
            make_scorer((TEXT,), **kwargs)
    with pytest.raises(ConfigError, match="weight 0"):
        make_scorer((OutputSpec("a", weight=0), OutputSpec("b", weight=0)))
    with pytest.raises(ConfigError, match="no output"):
        make_scorer(())


def test_a_wrong_gold_value_is_a_data_error():
    with pytest.raises(DataError):
        make_scorer((JSON,))({}, {"record": "{broken"}, {"record": "{}"})


# The user's own functions --------------------------------------------------------------------------------------


def user(fn: str, predicted="Paris", allowed=None):
    scorer = make_scorer((TEXT,), metric=f"{METRICS / 'metrics_ok.py'}:{fn}", functions_dir=allowed)
    return scorer({"question": "capital?"}, {"answer": "Paris"}, {"answer": predicted})


def test_user_functions_that_score():
    s = user("overlap", "It is paris.")
    assert (s.value, s.outcome, s.feedback) == (1.0, "correct", "overlap scored 1.00.")
    s = user("with_feedback", "Lyon")
    assert (s.value, s.feedback) == (0.25, "expected Paris, wrote Lyon")
    assert (user("as_dict").value, user("as_dict").feedback) == (0.5, "half right")
    assert user("mutates").value == 1.0
    assert make_scorer((TEXT,), metric=f"{METRICS}/metrics_ok.py:as_dict").name == "as_dict (your function)"


@pytest.mark.parametrize(("fn", "message"), [
    ("raises", "raises raised: ZeroDivisionError: division by zero"),
    ("nan", "nan returned NaN"),
    ("too_big", "too_big returned a score outside [0, 1]: 1.5"),
    ("a_string", "a_string returned the wrong type: a score is a number in [0, 1], got '0.5'"),
    ("a_bool", "a_bool returned the wrong type"),
    ("bad_tuple", "bad_tuple returned the wrong shape"),
])
def test_user_functions_that_misbehave_fail_the_example_never_zero(fn, message):
    s = user(fn)
    assert (s.value, s.outcome, s.error_kind) == (None, "failed", "metric")
    assert s.error.startswith(message)


def test_loading_errors_say_what_to_fix(tmp_path):
    (tmp_path / "syntax.py").write_text("def f(example, prediction):\n    return 1\n\ndef g(:\n")
    cases = [("nope.py:f", "does not exist"), (f"{tmp_path}/syntax.py:f", "line 4: syntax error"),
             (f"{METRICS}/metrics_ok.py:missing", "no function 'missing'"),
             (f"{METRICS}/metrics_ok.py:NOT_A_FUNCTION", "is a int, not a function"),
             (f"{METRICS}/raises_on_import.py:f", "raised while loading: RuntimeError: no database here"),
             (f"{METRICS}/metrics_ok.py", "does not name a function"), ("x.py:not-a-name", "does not name")]
    for ref, match in cases:
        with pytest.raises(ConfigError, match=re.escape(match)) as err:
            load_function(ref)
        assert err.value.hint, ref
    with pytest.raises(ConfigError) as err:
        load_function(f"{METRICS}/metrics_ok.py:missing")
    assert "overlap" in err.value.hint  # it lists what the file defines
    assert not [m for m in sys.modules if m.startswith("gepa_studio_user_metric_") and "raises" in m]


def test_two_files_with_one_name_load_apart(tmp_path):
    for folder, value in (("a", 0.25), ("b", 0.75)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text(f"def f(example, prediction):\n    return {value}\n")
    fa, fb = load_function(f"{tmp_path}/a/m.py:f"), load_function(f"{tmp_path}/b/m.py:f")
    assert (fa({}, {}), fb({}, {})) == (0.25, 0.75)


def test_only_files_under_the_allowed_folder_load(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (outside / "evil.py").write_text("def f(example, prediction):\n    return 1.0\n")
    (allowed / "good.py").write_text("def f(example, prediction):\n    return 1.0\n")
    (allowed / "link.py").symlink_to(outside / "evil.py")
    assert load_function("good.py:f", allowed_dir=allowed)({}, {}) == 1.0  # relative: under the folder
    assert load_function(f"{allowed}/good.py:f", allowed_dir=allowed)({}, {}) == 1.0
    for ref in (f"{outside}/evil.py:f", "../outside/evil.py:f", "link.py:f"):
        with pytest.raises(ConfigError, match="outside the folder") as err:
            load_function(ref, allowed_dir=allowed)
        assert str(allowed) in err.value.hint
    assert load_function(f"{outside}/evil.py:f")({}, {}) == 1.0  # the CLI (no folder) may load any file
    with pytest.raises(ConfigError, match="outside the folder"):
        user("overlap", allowed=allowed)


def test_a_metric_with_a_third_optional_parameter_is_called_as_example_prediction():
    """Only a function that takes GEPA's five arguments is called as GEPA calls a metric; fn(example, prediction,
    extra=None) is still the two-dict kind (before: called with five arguments, every example failed)."""
    from core.scoring.user import FunctionScorer

    def graded(example, prediction, strict=None):
        return float(example["answer"] == prediction["answer"])

    def gepa(gold, pred, trace=None, pred_name=None, pred_trace=None):
        return float(gold.answer == pred.answer)

    for fn in (graded, gepa):
        score = FunctionScorer(fn, f"m.py:{fn.__name__}")({"q": "x"}, {"answer": "Paris"}, {"answer": "Paris"})
        assert score.outcome == "correct" and score.value == 1.0, (fn.__name__, score)
