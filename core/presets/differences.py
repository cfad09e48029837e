"""How a difference from the original notebook's experiment reads: a setting's name in words, never the config's
field ("Train file", not ``task_ref.source``), and its value as a person reads it."""

from __future__ import annotations

from typing import Any

# How a difference from the notebook reads: a setting's name in words, not the config's field.
ROLE_WORDS = {"student": "Student", "large": "Large baseline", "frontier": "Frontier baseline",
              "reflection": "Reflection model"}
DIFFERENCE_WORDS = {
    "model": "model", "max_tokens": "max tokens", "reasoning_effort": "reasoning effort",
    "task_ref.kind": "Task", "task_ref.source": "Train file", "task_ref.test_source": "Test file",
    "task_ref.text_column": "Text column", "task_ref.label_column": "Label column", "task_ref.name": "Task name",
    "task_ref.merge_similar_labels": "Lookalike labels merged",
    "task_ref.drop_missing_labels": "Rows without a label dropped",
    "sample.train_per_label": "Train examples per label", "sample.val_per_label": "Validation examples per label",
    "sample.test_per_label": "Test examples per label", "sample.seed": "Sampling seed", "module": "Program kind",
    "start": "Starting program", "instruction": "Starting instruction",
    "reflection_minibatch_size": "Reflection minibatch", "use_merge": "Merging candidates", "threads": "Parallel calls",
    "seed": "GEPA's seed", "feedback": "Feedback", "cache": "Reusing cached answers", "max_cost_usd": "Spending cap",
}


def _said(value: Any, file: bool = False) -> str:
    if file and not value:
        return "the Hugging Face file"
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def difference(what: str, mine: Any, theirs: Any, file: bool = False) -> str:
    return f"{what}: {_said(mine, file)} (the notebook: {_said(theirs, file)})"


def differences(config: Any, models: Any, ours: Any, notebook: Any, roles: tuple[str, ...]) -> list[str]:
    """What ``config`` (an OptimizeConfig) and ``models`` (NotebookModels) change from the notebook's ``ours`` and
    ``notebook`` models, one line each in words."""
    out = []
    for role in roles:
        mine, theirs = models.role(role), notebook.role(role)
        out += [difference(f"{ROLE_WORDS[role]}'s {DIFFERENCE_WORDS[name]}", getattr(mine, name), getattr(theirs, name))
                for name in ("model", "max_tokens", "reasoning_effort") if getattr(mine, name) != getattr(theirs, name)]
    for name in ("task_ref", "sample"):
        mine, theirs = getattr(config, name).to_dict(), getattr(ours, name).to_dict()
        out += [difference(DIFFERENCE_WORDS.get(f"{name}.{k}", k), v, theirs[k], file=k.endswith("source"))
                for k, v in mine.items() if v != theirs[k]]
    for name in ("module", "start", "instruction", "reflection_minibatch_size", "use_merge", "threads", "seed",
                 "feedback", "cache", "max_cost_usd"):
        if getattr(config, name) != getattr(ours, name):
            out.append(difference(DIFFERENCE_WORDS.get(name, name), getattr(config, name), getattr(ours, name)))
    if config.budget_label() != ours.budget_label():
        out.append(difference("Budget", config.budget_label(), ours.budget_label()))
    return out
