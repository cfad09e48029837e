"""The Sweep form names the second model in each optimizer's own words (issue 22): "reflection model" for GEPA, the
teacher for few-shot, nothing for your own prompt, which has no second model."""

from __future__ import annotations

import pytest

from tests.ui.conftest import assert_clean, open_page, texts

ROLES = {"models.student": "gpt-4o-mini", "models.reflection": "claude-sonnet-4-5"}


def sweep_words(at) -> list[str]:
    """The sweep form's help and captions."""
    students = at.multiselect(key="optimize.sweep.students")
    return [students.help or "", *(c for c in texts(at, "caption") if "job" in c and "at once" in c)]


@pytest.mark.parametrize(("optimizers", "said", "unsaid"), [
    (["gepa"], "reflection model", None),
    (["fewshot"], "teacher", "reflection"),
    (["own"], None, "reflection"),
])
def test_the_sweep_form_speaks_of_the_second_model_as_its_optimizers_do(empty, optimizers, said, unsaid):
    at = open_page("pages/optimize.py", {**ROLES, "optimize.optimizer": optimizers[0],
                                         "optimize.own_instruction": "Label each sentence by its role."})
    at.multiselect(key="optimize.sweep.optimizers").set_value(optimizers).run()
    assert_clean(at)
    words = " ".join(sweep_words(at))
    assert words, "the sweep form is shown"
    if said:
        assert said in words, words
    if unsaid:
        assert unsaid not in words.lower(), words
    if optimizers == ["own"]:
        assert "Each student runs alone: no second model." in words
