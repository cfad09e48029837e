"""What one optimization (GEPA, MIPROv2, few-shot, or your own prompt) is asked to do: plain data that checks
itself when it is built."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from core.config.errors import ConfigError
from core.lm.models import ModelSpec
from core.program.metric import FeedbackMode
from core.program.program import ModuleType, Start, check_start
from core.tasks import SampleSpec, Splits, TaskRef
from core.tracking.runs import OPTIMIZER_LABELS

Budget = Literal["light", "medium", "heavy"]
BUDGETS: tuple[Budget, ...] = ("light", "medium", "heavy")
OptimizerName = Literal["gepa", "miprov2", "fewshot", "own"]
OPTIMIZER_NAMES: tuple[OptimizerName, ...] = get_args(OptimizerName)
# Fields that do not make another experiment: the seed (what a repeat varies), how the run is executed and the
# sweep that queued it (a sweep's cells that differ only in the seed are one repeat).
REPEAT_IGNORED = ("seed", "threads", "cache", "sweep")


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything one optimization job needs; plain data, so it crosses process boundaries as JSON.

    ``optimizer`` picks the entry of ``core.optimize.optimizers.OPTIMIZERS``: ``gepa`` (a reflection model and one
    budget), ``miprov2`` (the reflection model as prompt model and teacher; budget ``auto`` only), ``fewshot``
    (BootstrapFewShotWithRandomSearch with the reflection model as teacher, or LabeledFewShot without one; budget
    ``auto`` or ``max_full_evals`` candidate programs) or ``own`` (``instruction`` evaluated as it is).

    Building one checks it (``ConfigError`` says what to fix), as ``dspy.GEPA`` fails at construction;
    checks that need the sampled splits are in :meth:`check_splits`.
    """

    # What to optimize
    task_ref: TaskRef
    sample: SampleSpec
    student: ModelSpec
    reflection: ModelSpec | None
    module: ModuleType = "predict"
    start: Start = "described"  # the starting program: an entry of core.program.program.STARTS
    instruction: str = ""  # the starting instruction, for start "own"
    # Budget: exactly one of auto / max_metric_calls / max_full_evals
    auto: Budget | None = "light"
    max_metric_calls: int | None = None
    max_full_evals: int | None = None
    max_cost_usd: float | None = None  # stop (as with cancel) when student + reflection spend reaches this
    # GEPA
    reflection_minibatch_size: int = 3
    use_merge: bool = True
    threads: int = 4
    seed: int = 0
    feedback: FeedbackMode = "rule"
    cache: bool = True
    optimizer: OptimizerName = "gepa"
    sweep: str | None = None  # the sweep job that queued it (core.jobs.sweeps): tagged studio.sweep on its runs

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZER_NAMES:
            raise ConfigError(f"Unknown optimizer {self.optimizer!r}.", f"Use one of: {', '.join(OPTIMIZER_NAMES)}.")
        if self.optimizer == "own" and not self.instruction.strip():
            raise ConfigError("Evaluating your own prompt needs the prompt.",
                              "Type or paste your instruction (CLI: --instruction TEXT).")
        if self.optimizer in ("gepa", "miprov2") and self.reflection is None:
            role = "reflection model" if self.optimizer == "gepa" else "prompt model (MIPROv2 writes instructions with it)"
            raise ConfigError(f"No {role} chosen.", "Pick a strong model as the reflection model.")
        if self.optimizer == "miprov2" and (self.max_metric_calls or self.max_full_evals or self.auto is None):
            raise ConfigError("MIPROv2's budget is auto: light, medium or heavy.",
                              "Its trial counts come from DSPy's auto settings; give --budget light|medium|heavy.")
        if self.optimizer == "fewshot" and self.max_metric_calls:
            raise ConfigError("The few-shot optimizer's budget is a number of candidate programs, not metric calls.",
                              "Give light/medium/heavy (6/12/18 candidates) or evals:N for N candidate programs.")
        if self.auto not in (None, *BUDGETS):
            raise ConfigError(f"Unknown budget {self.auto!r}.", "Use light, medium or heavy, or a number of metric calls.")
        if (self.max_metric_calls is not None and self.max_metric_calls <= 0) or (
                self.max_full_evals is not None and self.max_full_evals <= 0):
            raise ConfigError("The budget must be more than zero.", "Give a positive number of metric calls or full evaluations.")
        chosen = [x for x in (self.auto, self.max_metric_calls, self.max_full_evals) if x not in (None, 0)]
        if len(chosen) != 1:
            raise ConfigError("Give exactly one budget: auto (light/medium/heavy), max metric calls, or max full evals.",
                              f"Got auto={self.auto}, max_metric_calls={self.max_metric_calls}, max_full_evals={self.max_full_evals}.")
        if self.reflection_minibatch_size < 1:
            raise ConfigError("The reflection minibatch size must be at least 1.")
        if self.threads < 1:
            raise ConfigError("Threads must be at least 1.")
        if self.max_cost_usd is not None and self.max_cost_usd <= 0:
            raise ConfigError("The spending cap must be more than $0.", "Leave it empty for no cap.")
        if self.module not in ("predict", "cot"):
            raise ConfigError(f"Unknown module type {self.module!r}.", "Use 'predict' or 'cot'.")
        check_start(self.start, self.instruction)
        if self.feedback not in ("rule", "judge"):
            raise ConfigError(f"Unknown feedback mode {self.feedback!r}.", "Use 'rule' or 'judge'.")
        if self.feedback == "judge" and self.reflection is None:
            raise ConfigError("An LLM judge needs a reflection model to judge with.", "Pick one, or use rule feedback.")

    def check_splits(self, splits: Splits) -> None:
        """Raise ConfigError for what GEPA would reject (with an assert) on these splits."""
        n_train = len(splits.train)
        if self.optimizer != "gepa":
            if self.optimizer == "miprov2" and n_train < 2:
                raise ConfigError(f"MIPROv2 needs at least 2 train examples; the train set has {n_train}.",
                                  "Raise train examples per label.")
            return
        if n_train < self.reflection_minibatch_size:
            raise ConfigError(
                f"The train set ({n_train} examples) is smaller than the reflection minibatch ({self.reflection_minibatch_size}).",
                "Raise train examples per label or lower the minibatch size.",
            )
        if self.max_metric_calls is not None:
            n_val = len(splits.val) if splits.val is not None and len(splits.val) else n_train
            if self.max_metric_calls < n_val:
                raise ConfigError(
                    f"A budget of {self.max_metric_calls} metric calls cannot even evaluate the starting program once on {n_val} validation examples.",
                    f"Give at least {n_val + 2 * self.reflection_minibatch_size} metric calls.",
                )

    @property
    def label(self) -> str:
        """The optimizer's name as people read it: GEPA, MIPROv2, Few-shot, Own prompt."""
        return OPTIMIZER_LABELS[self.optimizer]

    def budget_label(self) -> str:
        if self.optimizer == "own":
            return "no search"
        if self.optimizer == "fewshot" and self.reflection is None:
            return "labeled demos"
        if self.optimizer == "fewshot" and self.max_full_evals:
            return f"{self.max_full_evals} candidates"
        if self.auto:
            return self.auto
        if self.max_metric_calls:
            return f"{self.max_metric_calls} metric calls"
        return f"{self.max_full_evals} full evals"

    def title(self, task_name: str) -> str:
        models = f"{self.student.name} ← {self.reflection.name}" if self.reflection and self.optimizer != "own" \
            else self.student.name
        return f"{self.label} {models} · {task_name} · {self.budget_label()}"

    def repeat_key(self) -> str:
        """A short hash of everything but the seed (and how it runs: threads, cache), so runs that differ only in
        the seed share it, whether started as one repeat or one by one."""
        setup = {k: v for k, v in self.to_dict().items() if k not in REPEAT_IGNORED}
        return hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OptimizeConfig":
        d = dict(d)
        d["task_ref"] = TaskRef.from_dict(d["task_ref"])
        d["sample"] = SampleSpec.from_dict(d["sample"])
        d["student"] = ModelSpec.from_dict(d["student"])
        d["reflection"] = ModelSpec.from_dict(d["reflection"]) if d.get("reflection") else None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
