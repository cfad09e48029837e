import dspy
import pytest

from core.config.errors import ConfigError
from core.program.metric import label_in_completion, make_metric, normalize_label
from core.program.program import (
    fingerprint,
    get_instruction,
    load_program,
    make_program,
    prompt_text,
    render_prompt,
    save_program,
)
from core.tasks import demo_task
from tests.fake_lm import fake_lm

TASK = demo_task()
GOLD = dspy.Example(description="Patients were randomized to two arms.", target="METHODS").with_inputs("description")


def test_signature_types_output_as_the_labels_and_prompt_is_what_the_lm_gets():
    program = make_program(TASK)
    messages = render_prompt(program, GOLD)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(label in messages[0]["content"] for label in TASK.labels)
    assert "Patients were randomized" in messages[1]["content"]
    sent = []
    lm = fake_lm(lambda system, user: sent.append((system, user))
                 or "[[ ## target ## ]]\nMETHODS\n\n[[ ## completed ## ]]")
    with dspy.context(lm=lm):
        assert program(description=GOLD.description).target == "METHODS"
    assert sent[0][1].strip() == messages[1]["content"].strip()
    assert "=== system ===" in prompt_text(messages)


def test_save_load_roundtrip_keeps_instruction_and_fingerprint(tmp_path):
    program = make_program(TASK, "cot", instruction="Think about where the sentence sits in an abstract.")
    path = save_program(program, TASK, tmp_path / "p.json")
    loaded, task = load_program(path)
    assert task == TASK and isinstance(loaded, dspy.ChainOfThought)
    assert get_instruction(loaded) == "Think about where the sentence sits in an abstract."
    assert fingerprint(loaded) == fingerprint(program) != fingerprint(make_program(TASK, "cot"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="Not a GEPA Studio program"):
        load_program(tmp_path / "bad.json")


def test_rule_feedback_says_what_was_predicted_expected_and_the_sentence():
    metric = make_metric(TASK)
    right = metric(GOLD, dspy.Prediction(target="methods"))
    assert right.score == 1.0 and "Correct" in right.feedback
    wrong = metric(GOLD, dspy.Prediction(target="RESULTS"))
    assert wrong.score == 0.0
    assert "predicted RESULTS, expected METHODS" in wrong.feedback and "Patients were randomized" in wrong.feedback


def test_unparseable_output_feedback_quotes_what_the_model_wrote():
    from dspy.teleprompt.bootstrap_trace import FailedPrediction

    fb = make_metric(TASK)(GOLD, FailedPrediction(completion_text="I think this is about methods?"))
    assert fb.score == 0.0 and "I think this is about methods?" in fb.feedback and "METHODS" in fb.feedback


def test_judge_mode_adds_the_judges_rationale_and_needs_a_judge():
    with pytest.raises(ConfigError, match="judge model"):
        make_metric(TASK, "judge")
    judge = fake_lm(lambda s, u: "[[ ## rationale ## ]]\nRandomization describes the design: METHODS.\n\n"
                                 "[[ ## completed ## ]]")
    fb = make_metric(TASK, "judge", judge_lm=judge)(GOLD, dspy.Prediction(target="RESULTS"))
    assert fb.score == 0.0 and "Judge: Randomization describes the design" in fb.feedback


# --- reading labels out of answers ---

QUOTED = ('"positive"', "it's bad")


@pytest.mark.parametrize(("answer", "labels", "expected"), [
    ("methods", TASK.labels, "METHODS"),
    ("  Methods\u200b ", TASK.labels, "METHODS"),  # spaces and a zero-width space
    ("\uff2d\uff25\uff34\uff28\uff2f\uff24\uff33", TASK.labels, "METHODS"),  # full-width letters (NFKC)
    ("**METHODS**", TASK.labels, "METHODS"),
    ("`methods`", TASK.labels, "METHODS"),
    ("[METHODS]", TASK.labels, "METHODS"),
    ("'METHODS'.", TASK.labels, "METHODS"),
    ("METHODOLOGY", TASK.labels, None),
    ("", TASK.labels, None),
    (None, TASK.labels, None),
    ('"positive"', QUOTED, '"positive"'),  # the label's own quotes are kept...
    ("positive", QUOTED, '"positive"'),  # ...and an answer without them still names it
    ("\u201cpositive\u201d", QUOTED, '"positive"'),  # typographic quotes
    ("it's bad", QUOTED, "it's bad"),
    ("It\u2019s bad", QUOTED, "it's bad"),
    ("'it's bad'", QUOTED, "it's bad"),
])
def test_normalize_label(answer, labels, expected):
    assert normalize_label(answer, labels) == expected


def test_normalize_label_never_guesses_between_two_labels_of_one_spelling():
    labels = ("Yes", "yes")  # a Task refuses this; older data may still hold it
    assert normalize_label("yes", labels) == "yes" and normalize_label("Yes", labels) == "Yes"
    assert normalize_label("YES", labels) is None


def test_an_answer_the_adapter_could_not_parse_still_names_its_label():
    from dspy.teleprompt.bootstrap_trace import FailedPrediction

    assert label_in_completion("[[ ## target ## ]]\nmethods\n\n[[ ## completed ## ]]", "target",
                               TASK.labels) == "METHODS"
    assert label_in_completion('{"target": "Results"}', "target", TASK.labels) == "RESULTS"
    assert label_in_completion("no idea", "target", TASK.labels) is None
    fb = make_metric(TASK)(GOLD,
                           FailedPrediction(completion_text="[[ ## target ## ]]\nMethods\n\n[[ ## completed ## ]]"))
    assert fb.score == 1.0 and "not in the expected format" in fb.feedback


def test_quoted_labels_are_scored_correct_through_a_real_server():
    """Labels holding quotes, answered exactly by a model over HTTP, count as correct (before: never)."""
    import pandas as pd

    from core.evaluation.evaluate import EvalOptions, evaluate
    from core.lm.models import ModelSpec
    from core.program.program import to_examples
    from core.tasks import table_task
    from tests.stub_server import StubLLMServer, chat_answer, field_value, last_user_text

    df = pd.DataFrame({"text": [f"good {i}" for i in range(3)] + [f"bad {i}" for i in range(3)],
                       "label": [QUOTED[0]] * 3 + [QUOTED[1]] * 3})
    task = table_task(df, text_column="text", label_column="label", name="quoted")

    def answer(model, messages, body):
        good = field_value(last_user_text(messages), "text").startswith("good")
        return chat_answer("label", QUOTED[0] if good else QUOTED[1])

    with StubLLMServer(responder=answer) as stub:
        spec = ModelSpec("stub", "openai/stub-small", "openai-compatible", api_base=stub.base_url)
        res = evaluate(make_program(task), spec, to_examples(df, task), task, EvalOptions(threads=2, cache=False))
    assert res.records["predicted"].tolist() == res.records["gold"].tolist()
    assert res.metrics["accuracy"] == 1.0 and res.metrics["macro_f1"] == 1.0


def test_merged_labels_score_the_same_in_accuracy_and_per_label_f1(tmp_path, settings):
    """A file spelling one label three ways, merged: accuracy and per-label F1 agree (before: 100 % vs F1 0)."""
    from core.evaluation.evaluate import EvalOptions, evaluate
    from core.lm.models import ModelSpec
    from core.program.program import to_examples
    from core.tasks import TaskRef, load_tables
    from tests.data.make_bad_files import BAD_DIR
    from tests.stub_server import StubLLMServer, chat_answer, field_value, last_user_text

    ref = TaskRef(kind="file", source=str(BAD_DIR / "label_case_collision.csv"), text_column="text",
                  label_column="label", merge_similar_labels=True)
    task, train, _ = load_tables(ref, settings)
    assert task.labels == ("negative", "positive")

    def answer(model, messages, body):
        return chat_answer("label", "positive" if "positive" in field_value(last_user_text(messages), "text") else
                           "negative")

    with StubLLMServer(responder=answer) as stub:
        spec = ModelSpec("stub", "openai/stub-small", "openai-compatible", api_base=stub.base_url)
        res = evaluate(make_program(task), spec, to_examples(train, task), task, EvalOptions(threads=2, cache=False))
    assert res.metrics["accuracy"] == 1.0 and res.metrics["macro_f1"] == 1.0
    assert set(res.records["gold"]) == {"negative", "positive"}
