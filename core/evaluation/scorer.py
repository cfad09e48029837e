"""The scorer an evaluation of a task beyond classification uses: the task's own metrics, with its judge's model
(an LM built for the role ``judge``) when the task is scored by a rubric."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config.errors import ConfigError
from core.lm.models import ModelSpec, build_lm
from core.scoring import Scorer, make_scorer, metric_label
from core.tasks import Task
from core.tracking.store import TAG, RunStore
from core.tracking.tracing import evaluation_lm


def task_scorer(task: Task, judge: ModelSpec | None = None, functions_dir: str | Path | None = None,
                cache: bool = True, judge_lm: Any = None) -> Scorer:
    """The scorer of ``task``'s outputs; ``judge``: the model of a rubric judge (ConfigError when the task needs
    one and none is given), called through ``judge_lm`` when given (an evaluation traces it), else an LM built
    here; ``functions_dir``: where a user's metric function may live (None: anywhere, as the CLI allows)."""
    if task.metric == "judge" and judge is None:
        named = f" (the task names {task.judge.model!r})" if task.judge and task.judge.model else ""
        raise ConfigError(f"Task {task.name!r} is scored by an LLM judge, but no judge model was given{named}.",
                          "Pick the judge model (--judge MODEL on the command line; the Task page's judge field).")
    if judge_lm is None and task.metric == "judge" and judge is not None:
        judge_lm = build_lm(judge, cache=cache)
    return make_scorer(task.output_specs, task.metric, task.judge, judge_lm=judge_lm, functions_dir=functions_dir)


def task_labels(task: Task) -> tuple[str, ...]:
    """The labels a run's label tables are made over: none for a task beyond classification."""
    return task.labels if task.is_classification else ()


def task_tags(task: Task) -> dict[str, str]:
    """What every view needs to name a run's score: ``studio.metric`` ("accuracy" for classification, else the
    metric's name: "token F1", "judge: plain English") and ``studio.task_kind`` (classification | fields)."""
    if task.is_classification:
        return {f"{TAG}metric": "accuracy", f"{TAG}task_kind": "classification"}
    return {f"{TAG}metric": metric_label(task.output_specs, task.metric, task.judge), f"{TAG}task_kind": "fields"}


def traced_scorer(store: RunStore, run_id: str, task: Task, options: Any, texts: list[str]) -> Scorer | None:
    """The scorer an evaluation run passes on: the caller's (``options.scorer``); else, for a task scored by a rubric
    judge, one whose judge calls are traced as role "judge" of the run (its traces count them beside the student's);
    else None (the task's own, built by the evaluation)."""
    if options.scorer is not None or task.metric != "judge" or options.judge is None:
        return options.scorer
    judge_lm = evaluation_lm(store, run_id, options.judge, None, texts, cache=options.cache, role="judge")
    return task_scorer(task, options.judge, cache=options.cache, judge_lm=judge_lm)
