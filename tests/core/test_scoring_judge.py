"""The LLM judge (core.scoring.judge) through a real HTTP stub: a usable score counts; a failed call, an unreadable
answer or a score outside [0, 1] makes the example failed of kind "judge", never 0."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from core.lm.models import build_lm, openai_compatible
from core.scoring import Judge, make_scorer
from core.tasks.fields import JudgeSpec, OutputSpec
from tests.stub_server import StubError, StubLLMServer
from tests.stub_text import field_value, last_user_text

RUBRIC = "A good summary names the drug and the dose; 0 if it invents either."
SPEC = JudgeSpec(RUBRIC, name="faithful")
INPUTS, GOLD, PREDICTED = {"abstract": "Aspirin 100 mg daily."}, {"summary": "aspirin, 100 mg"}, {"summary": "aspirin"}


def judge_reply(score: str, rationale: str = "Names the drug but not the dose.") -> str:
    return f"[[ ## rationale ## ]]\n{rationale}\n\n[[ ## score ## ]]\n{score}\n\n[[ ## completed ## ]]"


def judged(responder, spec=SPEC):
    with StubLLMServer(responder=responder) as server:
        lm = build_lm(openai_compatible("stub", "stub-small", server.base_url, num_retries=0), cache=False)
        score = Judge(spec, lm)(INPUTS, GOLD, PREDICTED)
        return score, server.chat_requests()


def test_a_good_answer_is_the_judges_score_and_rationale():
    score, requests = judged(lambda model, messages, body: judge_reply("0.8"))
    assert (score.value, score.outcome, score.feedback) == (0.8, "partial", "Judge: Names the drug but not the dose.")
    text = last_user_text(requests[0]["body"]["messages"])
    assert field_value(text, "rubric") == RUBRIC
    assert field_value(text, "task_inputs") == "abstract: Aspirin 100 mg daily."
    assert field_value(text, "expected_outputs") == "summary: aspirin, 100 mg"
    assert field_value(text, "predicted_outputs") == "summary: aspirin"


@pytest.mark.parametrize(("reply", "why"), [
    ("I would say it is pretty good overall.", "answered unreadably"),
    (judge_reply("quite good"), "answered unreadably"),
    (judge_reply("1.7"), "outside [0, 1]: 1.7"),
    (judge_reply("-0.2"), "outside [0, 1]"),
    (judge_reply("NaN"), "outside [0, 1]: nan"),
])
def test_an_unusable_answer_fails_the_example_never_zero(reply, why):
    score, _ = judged(lambda model, messages, body: reply)
    assert (score.value, score.outcome, score.error_kind) == (None, "failed", "judge")
    assert score.error.startswith("judge: faithful ") and why in score.error


def test_a_server_error_fails_the_example_never_zero():
    score, requests = judged(lambda model, messages, body: StubError(500, "judge backend down"))
    assert (score.value, score.outcome, score.error_kind) == (None, "failed", "judge")
    assert "call failed (server_error)" in score.error and len(requests) == 1


def test_make_scorer_builds_the_judge_and_names_it():
    with StubLLMServer(responder=lambda model, messages, body: judge_reply("1.0", "Exactly right.")) as server:
        lm = build_lm(openai_compatible("stub", "stub-small", server.base_url, num_retries=0), cache=False)
        scorer = make_scorer((OutputSpec("summary"),), metric="judge", judge=SPEC, judge_lm=lm)
        score = scorer(INPUTS, GOLD, {"summary": None})
    assert scorer.name == "judge: faithful"
    assert (score.value, score.outcome, score.feedback) == (1.0, "correct", "Judge: Exactly right.")


def test_one_judge_serves_many_threads_each_its_own_answer():
    def by_prediction(model, messages, body):  # the score is the number the prediction holds
        value = field_value(last_user_text(messages), "predicted_outputs").split(": ")[1]
        return judge_reply(value, f"saw {value}")

    with StubLLMServer(responder=by_prediction) as server:
        lm = build_lm(openai_compatible("stub", "stub-small", server.base_url, num_retries=0), cache=False)
        judge = Judge(SPEC, lm)
        values = [f"0.{i:02d}" for i in range(64)]
        with ThreadPoolExecutor(max_workers=12) as pool:
            scores = list(pool.map(lambda v: judge(INPUTS, GOLD, {"summary": v}), values))
    assert [(s.value, s.feedback) for s in scores] == [(float(v), f"Judge: saw {v}") for v in values]
