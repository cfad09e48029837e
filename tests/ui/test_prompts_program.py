"""Your own two-predictor program (#24, examples/programs/extract_then_classify.py) on the pages, from what its runs
saved: Prompts diffs each predictor's instruction and saved prompt (the example filling the first predictor's
variables), and Optimization shows each candidate's change per predictor and which predictor a rejected proposal
rewrote. Loading the program is made to fail the test: the pages must never run its code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.core.test_search_components import CLASSIFY, EXTRACT, program_record
from tests.ui.conftest import assert_clean, open_page, texts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "programs" / "extract_then_classify.py"
RULE = "Label as METHODS when the sentence mentions: randomized, randomised, were assigned, participants."
SENTENCES = ["Patients were randomised to drug A or placebo.", "Drug A lowered blood pressure (p < 0.01)."]
TASK = {"name": "demo_sentences", "source": "core/demo_data/demo_sentences.csv",
        "inputs": [{"column": "description", "field": "sentence"}],
        "outputs": [{"column": "target", "kind": "label", "field": "label",
                     "labels": ["BACKGROUND", "CONCLUSIONS", "METHODS", "OBJECTIVE", "RESULTS"]}],
        "program": f"{EXAMPLE}:make_program"}


@dataclass(frozen=True)
class Pair:
    optimization: str
    original: str
    optimized: str
    programs: tuple[dict, dict]


def program_dicts() -> tuple[dict, dict]:
    """program.json of the original program and of one whose classify instruction gained a rule, as the runs save
    them (``program_to_dict``: each predictor's instruction and whole prompt)."""
    from core.program.program import program_to_dict
    from core.program.user_program import load_user_program
    from core.tasks import Task

    task = Task.from_dict(TASK)
    original, _ = load_user_program(f"{EXAMPLE}:make_program")
    optimized, _ = load_user_program(f"{EXAMPLE}:make_program")
    classify = optimized.classify.signature
    optimized.classify.signature = classify.with_instructions(classify.instructions + "\n" + RULE)
    return program_to_dict(original, task), program_to_dict(optimized, task)


def evaluation(store, parent: str, label: str, program: dict, right: int) -> str:
    """An evaluation run of ``program`` as the evaluation code logs one: its program and records."""
    from core.tracking.store import TAG

    run_id = store.start_run("evaluation", "demo_sentences", run_name=f"stub-small · {label}", parent_run_id=parent,
                             tags={f"{TAG}model": "stub-small", f"{TAG}program": label, f"{TAG}module": "program"})
    records = pd.DataFrame({"idx": range(2), "text": SENTENCES, "gold": ["METHODS", "RESULTS"],
                            "predicted": ["METHODS" if right else "BACKGROUND", "BACKGROUND"],
                            "correct": [bool(right), False]})
    store.log_artifacts(run_id, {"program.json": program, "records.csv": records})
    store.log_metrics(run_id, {"accuracy": right / 2, "n": 2, "cost_usd": 0.001, "cost_per_1k": 0.5})
    store.end_run(run_id)
    return run_id


@pytest.fixture
def pair(empty, monkeypatch) -> Pair:
    """An optimization of the program (its search.json in the saved format) and its two evaluations; from here on,
    loading a program fails the test."""
    from core.tracking.store import TAG, RunStore

    store = RunStore(empty)
    programs = program_dicts()
    opt = store.start_run("optimization", "demo_sentences", run_name="GEPA · stub-small ← stub-large",
                          params={"budget": "light"},
                          tags={f"{TAG}model": "stub-small", f"{TAG}program": "gepa", f"{TAG}module": "program",
                                f"{TAG}reflection_model": "stub-large"})
    store.log_artifacts(opt, {"original_program.json": programs[0], "optimized_program.json": programs[1],
                              "search.json": program_record()})
    original = evaluation(store, opt, "original", programs[0], 0)
    optimized = evaluation(store, opt, "optimized", programs[1], 1)
    store.log_metrics(opt, {"original_test_accuracy": 0.0, "optimized_test_accuracy": 0.5, "best_val_score": 0.5,
                            "optimization_cost_usd": 0.01})
    store.set_tags(opt, {f"{TAG}original_eval_run_id": original, f"{TAG}optimized_eval_run_id": optimized})
    store.end_run(opt)

    def never(*args, **kwargs):
        raise AssertionError(f"a page loaded a user's program: {args}")

    monkeypatch.setattr("core.program.user_program.load_user_program", never)
    return Pair(opt, original, optimized, programs)


def test_prompts_diffs_each_predictor_without_loading_the_program(pair):
    at = open_page("pages/prompts.py")
    assert_clean(at)
    assert (at.selectbox(key="prompts.a").value, at.selectbox(key="prompts.b").value) == (pair.original,
                                                                                          pair.optimized)
    captions, markdown = texts(at, "caption"), texts(at, "markdown")
    assert f"From A to B, 1 of 2 predictors changed: {CLASSIFY} (unchanged: {EXTRACT})." in captions
    assert markdown.count(f"##### {EXTRACT}") == 3 and markdown.count(f"##### {CLASSIFY}") == 3  # instruction,
    # side by side, differences
    diffs = [h.value for h in at.get("html") if "gs-diff" in h.value]
    assert len(diffs) == 4  # per predictor: its instruction, its whole prompt
    instruction_classify = diffs[1]
    assert "<ins>" in instruction_classify and "METHODS" in instruction_classify and "<del>" not in diffs[1]
    assert "<ins>" not in diffs[0] and "<del>" not in diffs[0]  # extract.predict: unchanged
    assert "<ins>" in diffs[3] and "<ins>" not in diffs[2]  # the prompts: classify's changed, extract's not

    # The first example fills the first predictor's variable; classify reads extract's output: its stay.
    first = SENTENCES[0]
    codes = texts(at, "code")
    saved_a, saved_b = (p["prompts"] for p in pair.programs)
    assert saved_b[EXTRACT].replace("{{sentence}}", first) in codes
    assert saved_a[CLASSIFY] in codes and saved_b[CLASSIFY] in codes and "{{finding}}" in saved_b[CLASSIFY]
    assert first in diffs[2] and "{{sentence}}" not in diffs[2]
    assert any("later predictors read what earlier ones produce" in c for c in captions)

    # Another example, then your own text.
    at.selectbox(key="prompts.example").select(1).run()
    assert_clean(at)
    assert saved_b[EXTRACT].replace("{{sentence}}", SENTENCES[1]) in texts(at, "code")
    at.selectbox(key="prompts.example").select(-1).run()
    assert_clean(at)
    assert saved_b[EXTRACT] in texts(at, "code")  # nothing typed: the variables as saved
    assert any("pick an example" in c for c in texts(at, "caption"))
    at.text_area(key="prompts.text").input("We enrolled 40 adults.").run()
    assert_clean(at)
    assert saved_a[EXTRACT].replace("{{sentence}}", "We enrolled 40 adults.") in texts(at, "code")


def test_optimization_shows_each_candidates_change_per_predictor(pair):
    at = open_page("pages/optimization.py", {"optimization.run_id": pair.optimization})
    assert_clean(at)
    at.selectbox(key="optimization.candidate").select(1).run()  # rewrote classify
    assert_clean(at)
    assert f"##### {CLASSIFY}" in texts(at, "markdown") and f"##### {EXTRACT}" not in texts(at, "markdown")
    assert f"unchanged: {EXTRACT}" in texts(at, "caption")
    assert any(m.startswith("**Against its parent #0**") and m.endswith(f"changed {CLASSIFY}")
               for m in texts(at, "markdown"))
    diffs = [h.value for h in at.get("html") if "gs-diff" in h.value]
    assert len(diffs) == 1 and "<ins>" in diffs[0] and "METHODS" in diffs[0]

    at.selectbox(key="optimization.candidate").select(4).run()  # rewrote both
    assert_clean(at)
    assert len([h for h in at.get("html") if "gs-diff" in h.value]) == 2
    assert not any(c.startswith("unchanged:") for c in texts(at, "caption"))

    table = next(f.value for f in at.dataframe if "components" in f.value.columns)
    assert table["components"].tolist() == [EXTRACT, f"{EXTRACT}, {CLASSIFY}"]
    assert f"**Proposed instruction for {EXTRACT}**" in texts(at, "markdown")
    at.selectbox(key="optimization.proposal").select(1).run()
    assert f"**Proposed instructions for {EXTRACT}, {CLASSIFY}**" in texts(at, "markdown")
