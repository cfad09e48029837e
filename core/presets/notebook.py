"""The original notebook's experiment as data: what it ran (:data:`PRESET`), what it reported (:data:`CLAIMS`), and
tables that put those claims beside what a run measured, each with its interval.

The notebook (a Databricks notebook on DSPy 3.0) classified PubMed RCT sentences by role. It drew 3 train and 10
test sentences per label from the Hugging Face train and test CSVs, resetting ``random_state=1`` for each label;
started from DSPy's bare signature (``description -> target: Literal[...]``); evaluated GPT-OSS 20B, GPT-OSS 120B and
Claude Sonnet 4 one example at a time (``max_tokens=25000``, ``reasoning_effort="medium"``, no cache); then ran
``dspy.GEPA(auto="light", reflection_minibatch_size=15, num_threads=16, seed=1)`` on 20B with Claude Sonnet 4
(``max_tokens=25000``) reflecting on an LLM judge's feedback, and evaluated the result on the same test sentences.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

import pandas as pd

from core.analytics import stats
from core.config.settings import Settings
from core.lm.models import PRESETS, ModelSpec, resolve_price
from core.optimize import Budget, OptimizeConfig, Plan, estimate
from core.presets.differences import differences
from core.program.metric import FeedbackMode
from core.program.program import ModuleType, Start
from core.tasks import SampleSpec, Task, TaskRef, load_pubmed, load_tables, make_splits, pubmed_task
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

Role = Literal["student", "large", "frontier", "reflection"]
Side = Literal["student_original", "student_optimized", "large", "frontier"]

# The label order of the notebook's ``Literal[...]``: DSPy lists the labels in the prompt in this order.
NOTEBOOK_LABELS: tuple[str, ...] = ("CONCLUSIONS", "RESULTS", "METHODS", "OBJECTIVE", "BACKGROUND")
NOTEBOOK_MODELS: dict[Role, str] = {
    "student": "databricks/databricks-gpt-oss-20b",
    "large": "databricks/databricks-gpt-oss-120b",
    "frontier": "databricks/databricks-claude-sonnet-4",
    "reflection": "databricks/databricks-claude-sonnet-4",
}
# Generation settings of the notebook's LMs: its TextClassifier (all three classifiers) and its reflection LM.
CLASSIFIER_SETTINGS: dict[str, Any] = {"max_tokens": 25000, "reasoning_effort": "medium"}
REFLECTION_SETTINGS: dict[str, Any] = {"max_tokens": 25000, "reasoning_effort": None}
TIMEOUT_S = 600.0  # the notebook set none: LiteLLM's default request timeout
PRESET_TAG, START_TAG = f"{TAG}preset", f"{TAG}start"
# A run's reproduction (its notebook job's id, or a fresh id) and its part in it (a Side or "optimization"):
REPRODUCTION_TAG, SIDE_TAG = f"{TAG}notebook_id", f"{TAG}notebook_side"


@dataclass(frozen=True)
class NotebookModels:
    """The four models of the experiment: the student GEPA optimizes, two larger baselines, the reflection model."""

    student: ModelSpec
    large: ModelSpec
    frontier: ModelSpec
    reflection: ModelSpec

    def role(self, role: Role) -> ModelSpec:
        return getattr(self, role)

    @property
    def baselines(self) -> tuple[ModelSpec, ModelSpec, ModelSpec]:
        """The three models the notebook evaluated before optimizing (the student's is GEPA's starting point)."""
        return self.student, self.large, self.frontier


@dataclass(frozen=True)
class NotebookPreset:
    """The notebook's task, sample, starting program, GEPA options and feedback; ``config`` adds the models."""

    task_ref: TaskRef = TaskRef(kind="pubmed")
    sample: SampleSpec = SampleSpec(train_per_label=3, val_per_label=0, test_per_label=10, seed=1,
                                    method="seed_per_label")
    start: Start = "bare"
    module: ModuleType = "predict"
    auto: Budget = "light"
    reflection_minibatch_size: int = 15
    threads: int = 16
    gepa_seed: int = 1
    use_merge: bool = True  # dspy.GEPA's default, which the notebook kept
    feedback: FeedbackMode = "judge"
    cache: bool = False

    def models(self, *, student: ModelSpec | None = None, large: ModelSpec | None = None,
               frontier: ModelSpec | None = None, reflection: ModelSpec | None = None,
               notebook_settings: bool = True) -> NotebookModels:
        """The notebook's Databricks models, or the ones given instead. ``notebook_settings`` gives every model the
        notebook's generation settings (a model that rejects them, e.g. a 16k output cap, needs ``False``)."""
        given = {"student": student, "large": large, "frontier": frontier, "reflection": reflection}
        specs = {}
        for role, spec in given.items():
            if spec is None:
                spec = next(p for p in PRESETS if p.model == NOTEBOOK_MODELS[role])  # type: ignore[index]
            if notebook_settings or given[role] is None:
                settings = REFLECTION_SETTINGS if role == "reflection" else CLASSIFIER_SETTINGS
                spec = replace(spec, **settings, timeout_s=TIMEOUT_S)
            specs[role] = spec
        return NotebookModels(**specs)

    def config(self, models: NotebookModels, **changes: Any) -> OptimizeConfig:
        """The optimization the notebook ran, with ``models``; ``changes`` are OptimizeConfig fields to vary."""
        base: dict[str, Any] = dict(
            task_ref=self.task_ref, sample=self.sample, student=models.student, reflection=models.reflection,
            module=self.module, start=self.start, auto=self.auto,
            reflection_minibatch_size=self.reflection_minibatch_size, use_merge=self.use_merge,
            threads=self.threads, seed=self.gepa_seed, feedback=self.feedback, cache=self.cache)
        return OptimizeConfig(**{**base, **changes})

    def differences(self, config: OptimizeConfig, models: NotebookModels) -> list[str]:
        """What ``config`` and ``models`` change from the notebook's experiment, in words (empty: none), e.g.
        "Parallel calls: 4 (the notebook: 16)"."""
        return differences(config, models, self.config(self.models()), self.models(), tuple(NOTEBOOK_MODELS))


PRESET = NotebookPreset()


# Planning ------------------------------------------------------------------------------------


def notebook_task(task: Task) -> Task:
    """``task`` with its labels in the notebook's order when they are the PubMed labels (the prompt lists them)."""
    return replace(task, labels=NOTEBOOK_LABELS) if set(task.labels) == set(NOTEBOOK_LABELS) else task


def notebook_tables(ref: TaskRef, settings: Settings) -> tuple[Task, pd.DataFrame, pd.DataFrame | None]:
    """The tables the notebook drew from. PubMed's files as read, as the notebook took them: it dropped no duplicate
    or blank row, and leaving one out moves every later draw of its label. Other tasks are cleaned as usual."""
    if ref.kind != "pubmed":
        return load_tables(ref, settings)
    train = load_pubmed("train", source=ref.source or None, cache_dir=settings.cache_dir)
    test = None
    if ref.test_source or not ref.source:  # as the pubmed source: the hub's test file unless a local train is given
        test = load_pubmed("test", source=ref.test_source or None, cache_dir=settings.cache_dir)
    return pubmed_task(ref.source or "hub"), train, test


def plan(config: OptimizeConfig, settings: Settings) -> Plan:
    """Load the task, draw the sample with ``config.sample.method`` and estimate: the plan to run exactly."""
    task, train, test = notebook_tables(config.task_ref, settings)
    task = notebook_task(task)
    splits = make_splits(task, train, test, config.sample)
    blank = sum(int(part[task.text_column].fillna("").astype(str).str.strip().eq("").sum())
                for part in (splits.train, splits.test))
    if blank:
        splits = replace(splits, notes=(*splits.notes, f"{blank} drawn sentence(s) are blank, as in the notebook's "
                                                       "draw of these files: they are sent as they are."))
    config.check_splits(splits)
    return Plan(config, task, splits, estimate(config, task, splits))


def evaluation_costs(plan: Plan, models: NotebookModels) -> dict[str, float | None]:
    """Estimated USD of each test evaluation besides GEPA: the student before and after, and the two baselines
    (the student's tokens per call from the plan's estimate; None where a price is unknown)."""
    n = len(plan.splits.test)
    tokens_in, tokens_out = plan.estimate.student_tokens_per_call

    def cost(spec: ModelSpec, evaluations: int) -> float | None:
        one = resolve_price(spec).cost(n * tokens_in, n * tokens_out)
        return None if one is None else one * evaluations

    return {f"{models.student.name} (before and after)": cost(models.student, 2),
            models.large.name: cost(models.large, 1), models.frontier.name: cost(models.frontier, 1)}


# Reproductions stored (core.presets.reproduce runs one) ---------------------------------------


def reproductions(store: RunStore, task: str | None = None) -> pd.DataFrame:
    """Runs tagged as the notebook's experiment (of ``task``), newest first: reproduction, side, model, task, run_id."""
    columns = {"reproduction": REPRODUCTION_TAG, "side": SIDE_TAG, "model": f"{TAG}model", "task": f"{TAG}task"}
    frame = pd.DataFrame([{**{c: r.data.tags.get(t, "") for c, t in columns.items()}, "run_id": r.info.run_id,
                           "start_time": r.info.start_time} for r in store.search(f"tags.`{PRESET_TAG}` = 'notebook'")],
                         columns=[*columns, "run_id", "start_time"])
    frame = frame[(frame["reproduction"] != "") & (frame["side"] != "") & ((frame["task"] == task) if task else True)]
    return frame.reset_index(drop=True)


# What the notebook reported, beside what a run measured --------------------------------------


@dataclass(frozen=True)
class Claim:
    """One outcome the notebook reported: ``ahead`` beat ``behind`` (by about ``points`` accuracy points)."""

    key: str
    text: str
    ahead: Side
    behind: Side
    points: float | None = None  # None: only the order was reported


CLAIMS: tuple[Claim, ...] = (
    Claim("gepa_gain", "GEPA lifts GPT-OSS 20B by about 6 points", "student_optimized", "student_original", 6.0),
    Claim("passes_large", "The optimized 20B passes GPT-OSS 120B", "student_optimized", "large"),
    Claim("frontier_ahead", "Claude Sonnet 4 stays about 4 points ahead of the optimized 20B", "frontier",
          "student_optimized", 4.0),
)
SIDE_NAMES: dict[Side, str] = {"student_original": "student, before GEPA", "student_optimized": "student, after GEPA",
                               "large": "large model", "frontier": "frontier model"}


def _correct(records: pd.DataFrame) -> pd.Series:
    """The ``correct`` column as booleans (records read back from a CSV may hold "True" / "False")."""
    return records["correct"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))


def measured_frame(records: Mapping[Side, pd.DataFrame | None],
                   names: Mapping[Side, str] | None = None) -> pd.DataFrame:
    """One row per side: accuracy over all examples with its 95% Wilson interval, n and failed examples."""
    rows = []
    for side, label in SIDE_NAMES.items():
        recs = records.get(side)
        n = 0 if recs is None else len(recs)
        correct = 0 if recs is None else int(_correct(recs).sum())
        low, high = stats.wilson_interval(correct, n) if n else (float("nan"), float("nan"))
        failed = 0 if recs is None or "outcome" not in recs else int((recs["outcome"] == "failed").sum())
        rows.append({"side": side, "what": label, "model": (names or {}).get(side, ""),
                     "accuracy": correct / n if n else float("nan"), "ci_low": low, "ci_high": high, "n": n,
                     "failed": failed})
    return pd.DataFrame(rows)


def claims_frame(records: Mapping[Side, pd.DataFrame | None], claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Each claim beside the measured difference (ahead - behind, as a fraction) with its 95% interval (paired:
    both sides scored the same test examples) and a verdict: ``holds`` (the interval is above 0), ``reversed``
    (below 0), ``unresolved`` (it spans 0) or ``no data``; ``size_in_interval`` says whether the reported size lies
    inside the interval."""
    rows = []
    for claim in claims:
        row: dict[str, Any] = {"claim": claim.key, "text": claim.text,
                               "reported": f"+{claim.points:g} points" if claim.points is not None else "ahead",
                               "reported_diff": claim.points / 100 if claim.points is not None else float("nan"),
                               "diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
                               "paired": False, "n": 0, "p_mcnemar": float("nan"), "verdict": "no data",
                               "size_in_interval": None}
        ahead, behind = records.get(claim.ahead), records.get(claim.behind)
        if ahead is not None and behind is not None and len(ahead) and len(behind):
            t = stats.trade_off(behind, ahead)
            row.update(diff=t["diff"], ci_low=t["ci_low"], ci_high=t["ci_high"], paired=t["paired"], n=t["n"],
                       p_mcnemar=float("nan") if t["p_value"] is None else t["p_value"],  # none at small n
                       verdict="holds" if t["ci_low"] > 0 else "reversed" if t["ci_high"] < 0 else "unresolved")
            if claim.points is not None:
                row["size_in_interval"] = bool(t["ci_low"] <= claim.points / 100 <= t["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows)
