import dspy
import pytest

from core.errors import ConfigError
from core.metric import make_metric
from core.program import (
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
    lm = fake_lm(lambda system, user: sent.append((system, user)) or "[[ ## target ## ]]\nMETHODS\n\n[[ ## completed ## ]]")
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
    judge = fake_lm(lambda s, u: "[[ ## rationale ## ]]\nRandomization describes the design: METHODS.\n\n[[ ## completed ## ]]")
    fb = make_metric(TASK, "judge", judge_lm=judge)(GOLD, dspy.Prediction(target="RESULTS"))
    assert fb.score == 0.0 and "Judge: Randomization describes the design" in fb.feedback
