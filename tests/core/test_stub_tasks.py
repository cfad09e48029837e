"""The shipped tasks' files, and the stub that answers them (tests/stub_tasks.py): a student that needs every hint of
its task to score 1, a reflection model that adds one hint at a time, a judge for the rewrite task.

Messages are built by DSPy's own ChatAdapter and replies parsed by it, so the stub is held to DSPy's real format; the
scores are computed here (SQuAD token F1, numeric equality, set F1, the stub judge's score), not by core's scorers.
"""

import json
import re
import tomllib
from collections import Counter
from pathlib import Path

import dspy
import litellm
import pandas as pd
import pytest
from dspy.teleprompt.gepa.instruction_proposal import InstructionProposer
from gepa.strategies.instruction_proposal import InstructionProposalSignature

from tests.fake_lm import fake_lm
from tests.stub_tasks import SHIPPED, TASK_HINTS, TASKS, task_responder, task_stub

NAMES = ("extract", "qa", "arithmetic", "tags", "rewrite")
TOP_KEYS = {"name", "title", "description", "data", "instruction", "metric", "inputs", "outputs", "judge", "sample"}
OUTPUT_KEYS = {"column", "kind", "description", "metric", "weight", "labels"}
TYPES = {"tags": list[str], "arithmetic": float}
START = "Given the fields, produce the outputs."
ADAPTER = dspy.ChatAdapter()


@pytest.fixture(autouse=True)
def fresh_dspy_cache():
    """Overrides conftest's per-test DSPy cache (about a second a test on a busy machine): nothing here goes through
    it (fake LMs have cache=False; the one HTTP call is litellm's own)."""
    yield


def toml(name):
    return tomllib.loads((SHIPPED / name / "task.toml").read_text(encoding="utf-8"))


def data(name):
    return pd.read_csv(SHIPPED / name / toml(name)["data"], dtype=str, keep_default_na=False)


def signature(name, instruction):
    fields = {n: (str, dspy.InputField()) for n in TASKS[name].inputs}
    fields |= {n: (TYPES.get(name, str), dspy.OutputField()) for n in TASKS[name].outputs}
    return dspy.Signature(fields, instruction)


def ask(sig, inputs, model="stub-small", body=None):
    """One call to the responder with ChatAdapter's messages, parsed back by ChatAdapter."""
    return ADAPTER.parse(sig, task_responder(model, ADAPTER.format(sig, demos=[], inputs=inputs), body or {}))


def token_f1(predicted, expected):
    def norm(s):
        return re.sub(r"\b(a|an|the)\b", " ", re.sub(r"[^\w\s]", "", str(s).lower())).split()
    p, e = norm(predicted), norm(expected)
    if not p or not e:
        return float(p == e)
    same = sum((Counter(p) & Counter(e)).values())
    return 2 * same / (len(p) + len(e)) if same else 0.0


def set_f1(predicted, expected):
    p, e = set(predicted), set(expected)
    return 2 * len(p & e) / (len(p) + len(e))


JUDGE = dspy.Signature({"rubric": (str, dspy.InputField()), "note": (str, dspy.InputField()),
                        "expected_output": (str, dspy.InputField()), "output": (str, dspy.InputField()),
                        "rationale": (str, dspy.OutputField()), "score": (float, dspy.OutputField())},
                       "Score the output against the rubric.")


def judge(note, expected, predicted, model="stub-large"):
    rubric = (SHIPPED / "rewrite" / "rubric.md").read_text(encoding="utf-8")
    return ask(JUDGE, {"rubric": rubric, "note": note, "expected_output": expected, "output": predicted}, model)


def score(name, row, got):
    if name == "extract":
        return sum(token_f1(got[k], row[k]) for k in ("drug", "dose", "condition")) / 3
    if name == "qa":
        return token_f1(got["answer"], row["answer"])
    if name == "arithmetic":
        return float(abs(got["answer"] - float(row["answer"])) <= 0.01)
    if name == "tags":
        return set_f1(got["tags"], [t.strip() for t in row["tags"].split(";")])
    return judge(row["note"], row["reference"], got["reference"])["score"]


def mean_score(name, instruction):
    sig, df = signature(name, instruction), data(name)
    rows = df.to_dict("records")
    return sum(score(name, r, ask(sig, {k: r[k] for k in TASKS[name].inputs})) for r in rows) / len(rows)


def taught(name, skip=None):
    return "\n".join([START, *(h for i, h in enumerate(TASK_HINTS[name]) if i != skip)])


# ---- the shipped files ----

@pytest.mark.parametrize("name", NAMES)
def test_task_files(name):
    spec = toml(name)
    assert set(spec) <= TOP_KEYS and spec["name"] == name and spec["title"] and len(spec["description"]) > 80
    assert all(set(o) <= OUTPUT_KEYS for o in spec["outputs"])
    assert spec["sample"] == {"train": 20, "val": 10, "test": 30} and spec["instruction"] == ""
    inputs, outputs = [i["column"] for i in spec["inputs"]], [o["column"] for o in spec["outputs"]]
    assert (tuple(inputs), tuple(outputs)) == (TASKS[name].inputs, TASKS[name].outputs)  # what the stub reads
    df = data(name)
    assert len(df) == 60 and list(df.columns) == inputs + outputs
    assert not df.duplicated(inputs).any()
    required = inputs if name == "extract" else inputs + outputs
    assert (df[required].apply(lambda c: c.str.strip()) != "").all().all()
    if spec["metric"] == "judge":
        assert (SHIPPED / name / spec["judge"]["rubric_file"]).read_text(encoding="utf-8").strip()


def test_extract_cells_come_from_the_sentence_and_a_few_are_empty():
    df = data("extract")
    blank = (df[["drug", "dose", "condition"]] == "").any(axis=1)
    assert 3 <= blank.sum() <= 10
    for _, row in df.iterrows():
        assert all(row[k].lower() in row["sentence"].lower() for k in ("drug", "dose", "condition"))
        assert row["dose"] == "" or re.fullmatch(r"\d+(\.\d+)? \S+", row["dose"]), row["dose"]


def test_qa_answers_are_spans_of_short_contexts():
    for _, row in data("qa").iterrows():
        assert row["answer"] in row["context"]
        assert 2 <= len(re.split(r"(?<=[.!?])\s+", row["context"])) <= 4


def test_tags_use_only_the_listed_labels():
    labels = set(toml("tags")["outputs"][0]["labels"])
    assert len(labels) == 6
    seen = Counter()
    for cell in data("tags")["tags"]:
        tags = [t.strip() for t in cell.split(";")]
        assert 1 <= len(tags) <= 3 and len(set(tags)) == len(tags) and set(tags) <= labels, cell
        seen.update(tags)
    assert set(seen) == labels and min(seen.values()) >= 8


def test_arithmetic_answers_are_numbers():
    answers = pd.to_numeric(data("arithmetic")["answer"], errors="raise")
    decimals = (answers != answers.round()).sum()
    assert 5 <= decimals <= 25 and (answers.round(2) == answers).all()


# ---- the student ----

@pytest.mark.parametrize("name", NAMES)
def test_student_needs_every_hint(name):
    start, full = mean_score(name, START), mean_score(name, taught(name))
    print(f"\n{name}: start {start:.3f} -> all hints {full:.3f}")
    assert start < 0.8 and full >= 0.99
    for i in range(len(TASK_HINTS[name])):  # each hint matters on its own
        assert mean_score(name, taught(name, skip=i)) < full - 0.01, TASK_HINTS[name][i]


def test_stub_large_knows_every_hint_and_json_mode_answers_an_object():
    row = data("extract").iloc[0]
    sig = signature("extract", START)
    expected = {k: row[k] for k in ("drug", "dose", "condition")}
    assert ask(sig, {"sentence": row["sentence"]}, model="stub-large") == expected
    messages = ADAPTER.format(sig, demos=[], inputs={"sentence": row["sentence"]})
    reply = json.loads(task_responder("stub-small", messages, {"response_format": {"type": "json_object"}}))
    assert set(reply) == {"drug", "dose", "condition"} and reply != expected


def test_an_unknown_input_gets_a_rough_answer_and_chain_of_thought_gets_its_reasoning():
    sig = signature("extract", START).prepend("reasoning", dspy.OutputField(), type_=str)
    got = ask(sig, {"sentence": "Volunteers with gout took febuxostat 80 mg daily."})
    assert got["reasoning"] and got["dose"] == "80"  # the unit is dropped: the hint is missing
    tags = ask(signature("tags", START), {"text": "My parcel never arrived and the courier will not answer."})
    assert tags["tags"] == ["account"]  # shipping, but the hint that teaches shipping is missing


# ---- the reflection model ----

def teacher(system, user):
    return task_responder("stub-large", [{"role": "system", "content": system}, {"role": "user", "content": user}], {})


def feedback_rows(name, rows):
    return [{"Inputs": {k: r[k] for k in TASKS[name].inputs}, "Generated Outputs": {k: r[k] for k in
             TASKS[name].outputs}, "Feedback": "Not quite."} for r in rows]


def propose(name, instruction, rows):
    """One proposal by DSPy's own instruction proposer (what dspy.GEPA calls), the stub as its reflection LM."""
    with dspy.context(lm=fake_lm(teacher, "fake/teacher")):
        return InstructionProposer()({"p": instruction}, {"p": feedback_rows(name, rows)}, ["p"])["p"]


@pytest.mark.parametrize("name", NAMES)
def test_reflection_adds_one_hint_at_a_time(name):
    rows = data(name).head(12).to_dict("records")
    instruction, steps = START, 0
    while steps <= len(TASK_HINTS[name]):
        new = propose(name, instruction, rows)
        if new == instruction:
            break
        added = new.removeprefix(instruction + "\n")
        assert new.startswith(instruction) and added in TASK_HINTS[name] and added not in instruction
        instruction, steps = new, steps + 1
    assert steps == len(TASK_HINTS[name]) and mean_score(name, instruction) >= 0.99


def test_reflection_picks_a_hint_that_changes_a_shown_example():
    rows = [r for r in data("qa").to_dict("records") if r["question"].startswith("When ")][:3]
    new = propose("qa", f"{START}\n{TASK_HINTS['qa'][0]}", rows)
    assert new == f"{START}\n{TASK_HINTS['qa'][0]}\n{TASK_HINTS['qa'][3]}"  # the year, not the first missing (names)


def test_gepa_packages_own_template_gets_a_fenced_instruction():
    prompt = InstructionProposalSignature.prompt_renderer(
        {"current_instruction_doc": START, "dataset_with_feedback": feedback_rows("arithmetic", data("arithmetic")
                                                                                   .head(8).to_dict("records"))})
    reply = task_responder("stub-large", [{"role": "user", "content": prompt}], {})
    added = InstructionProposalSignature.output_extractor(reply)["new_instruction"].removeprefix(START + "\n")
    assert reply.startswith("```") and added in TASK_HINTS["arithmetic"]


def test_gepa_climbs_against_the_stub():
    rows = data("arithmetic").to_dict("records")
    examples = [dspy.Example(**r).with_inputs("problem") for r in rows]

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        right = abs(float(pred.answer) - float(gold.answer)) <= 0.01
        return dspy.Prediction(score=float(right), feedback="Right." if right else f"Expected {gold.answer}.")

    program = dspy.Predict(signature("arithmetic", START))
    with dspy.context(lm=fake_lm(lambda s, u: task_responder("stub-small", [
            {"role": "system", "content": s}, {"role": "user", "content": u}], {}), "fake/student")):
        gepa = dspy.GEPA(metric=metric, reflection_lm=fake_lm(teacher, "fake/teacher"), max_metric_calls=300,
                         reflection_minibatch_size=3, num_threads=1, seed=0)
        best = gepa.compile(program, trainset=examples[:20], valset=examples[20:30])
        accuracy = [sum(metric(e, p(**e.inputs())).score for e in examples[30:]) / 30 for p in (program, best)]
    print(f"\nGEPA on arithmetic against the stub: test {accuracy[0]:.2f} -> {accuracy[1]:.2f}")
    assert accuracy[0] < 0.6 and accuracy[1] == 1.0


# ---- the judge, the classification fallback, and one call over HTTP ----

def test_judge_scores_a_rewrite_against_the_expected_one():
    row = data("rewrite").iloc[0]
    full = judge(row["note"], row["reference"], row["reference"])
    assert full["score"] == 1.0 and full["rationale"]
    spoilt = ask(signature("rewrite", START), {"note": row["note"]})["reference"]
    partial = judge(row["note"], row["reference"], spoilt, model="stub-small")
    assert 0 < partial["score"] < 0.9 and "left:" in partial["rationale"]
    assert judge(row["note"], row["reference"], "")["score"] == 0.0


def test_a_classification_prompt_goes_to_gepa_responder():
    sig = dspy.Signature({"description": (str, dspy.InputField()), "target": (str, dspy.OutputField())}, START)
    assert ask(sig, {"description": "We aimed to assess sleep."})["target"] == "BACKGROUND"  # no hint taught


def test_one_call_through_the_stub_server():
    row = data("qa").iloc[0]
    sig = signature("qa", taught("qa"))
    messages = ADAPTER.format(sig, demos=[], inputs={"context": row["context"], "question": row["question"]})
    with task_stub() as stub:
        response = litellm.completion(model="openai/stub-small", api_base=stub.base_url, api_key="x",
                                      messages=messages)
    assert ADAPTER.parse(sig, response.choices[0].message.content)["answer"] == row["answer"]
    assert Path(SHIPPED, "README.md").is_file()
