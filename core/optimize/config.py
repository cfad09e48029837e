"""What one optimization (GEPA, MIPROv2, few-shot, or your own prompt) is asked to do: plain data that checks
itself when it is built."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from core.config.errors import ConfigError
from core.lm.models import ModelSpec
from core.program.metric import FeedbackMode
from core.program.program import ModuleType, Start, check_start
from core.tasks import SampleSpec, Splits, TaskRef

Budget = Literal["light", "medium", "heavy"]
BUDGETS: tuple[Budget, ...] = ("light", "medium", "heavy")
BUDGET_NUMBERS = ("max_metric_calls", "max_full_evals")  # the budgets given as a number


class OptimizerRules(Protocol):
    """What a config needs of its optimizer's entry in the optimizer table (core.optimize.optimizers.Optimizer)."""

    name: str
    label: str
    reflection_role: str  # what the reflection model is to it ("" when it uses none)
    reflection_needed: str  # the words of a missing reflection model ("" when it can go without one)
    presets: tuple[Budget, ...]  # the auto budgets it offers (none: it has no budget)
    numbers: dict[str, str]  # the budget numbers it takes, field -> unit ("metric calls", "candidates")
    budget_error: tuple[str, str]  # what to say (and how to fix it) for a budget it does not take
    without_reflection: str  # its budget's words when it runs without a reflection model ("" when it cannot)
    instruction_needed: str  # what to say when the instruction is missing ("" when it needs none: own prompt needs it)
    min_train: int
    seeded: bool  # a seed changes what it does (a repeat with N seeds means something)

    def check_splits(self, config: OptimizeConfig, splits: Splits) -> None: ...


# THE optimizer table: core.optimize.optimizers fills it (it imports this module, so this one reads it, never fills
# it) when the package loads, before any config can be built. An optimizer is one entry there; nothing here names one.
OPTIMIZERS: dict[str, OptimizerRules] = {}
# Fields that do not make another experiment: the seed (what a repeat varies), how the run is executed and the
# sweep that queued it (a sweep's cells that differ only in the seed are one repeat).
REPEAT_IGNORED = ("seed", "threads", "cache", "sweep")


# GEPA's component selectors (dspy.GEPA's component_selector): which predictors one proposal rewrites.
COMPONENT_SELECTORS: dict[str, str] = {
    "round_robin": "one predictor per proposal, each in turn (GEPA's default)",
    "all": "every predictor in each proposal",
}


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
    # Which predictors of a program each GEPA proposal rewrites: an entry of COMPONENT_SELECTORS (one predictor in
    # turn, or all at once); a one-predictor program has one either way.
    component_selector: str = "round_robin"
    use_merge: bool = True
    threads: int = 4
    seed: int = 0
    feedback: FeedbackMode = "rule"
    cache: bool = True
    optimizer: str = "gepa"  # a key of OPTIMIZERS
    sweep: str | None = None  # the sweep job that queued it (core.jobs.sweeps): tagged studio.sweep on its runs

    def __post_init__(self) -> None:
        self._check_optimizer()
        if self.auto not in (None, *BUDGETS):
            raise ConfigError(f"Unknown budget {self.auto!r}.",
                              "Use light, medium or heavy, or a number of metric calls.")
        if (self.max_metric_calls is not None and self.max_metric_calls <= 0) or (
                self.max_full_evals is not None and self.max_full_evals <= 0):
            raise ConfigError("The budget must be more than zero.",
                              "Give a positive number of metric calls or full evaluations.")
        chosen = [x for x in (self.auto, self.max_metric_calls, self.max_full_evals) if x not in (None, 0)]
        if len(chosen) != 1:
            raise ConfigError("Give exactly one budget: auto (light/medium/heavy), max metric calls, or max full "
                              "evals.",
                              f"Got auto={self.auto}, max_metric_calls={self.max_metric_calls}, "
                              f"max_full_evals={self.max_full_evals}.")
        if self.component_selector not in COMPONENT_SELECTORS:
            raise ConfigError(f"Unknown component selector {self.component_selector!r}.",
                              f"Use one of: {', '.join(COMPONENT_SELECTORS)}.")
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

    def _check_optimizer(self) -> None:
        """What its optimizer's entry asks of a config: a known name, the prompt, a reflection model, a budget it
        takes."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"Unknown optimizer {self.optimizer!r}.", f"Use one of: {', '.join(OPTIMIZERS)}.")
        rules = self.rules
        if rules.instruction_needed and not self.instruction.strip():
            raise ConfigError(rules.instruction_needed, "Type or paste your instruction (CLI: --instruction TEXT).")
        if rules.reflection_needed and self.reflection is None:
            raise ConfigError(f"No {rules.reflection_needed} chosen.", "Pick a strong model as the reflection model.")
        numbers = [f for f in BUDGET_NUMBERS if getattr(self, f)]
        refused = any(f not in rules.numbers for f in numbers) or (self.auto is None and not rules.numbers)
        if rules.presets and refused:  # a budget number it does not take, or none where it needs one
            raise ConfigError(*rules.budget_error)

    @property
    def rules(self) -> OptimizerRules:
        """Its optimizer's entry in the optimizer table."""
        return OPTIMIZERS[self.optimizer]

    @property
    def second_model(self) -> ModelSpec | None:
        """The reflection model when the optimizer uses one (your own prompt calls the student only)."""
        return self.reflection if self.rules.reflection_role else None

    def check_splits(self, splits: Splits) -> None:
        """Raise ConfigError for what the optimizer would reject on these splits (GEPA with an assert)."""
        n_train = len(splits.train)
        if n_train < self.rules.min_train:
            raise ConfigError(f"{self.label} needs at least {self.rules.min_train} train examples; the train set has "
                              f"{n_train}.", "Raise train examples per label.")
        self.rules.check_splits(self, splits)

    @property
    def label(self) -> str:
        """The optimizer's name as people read it: GEPA, MIPROv2, Few-shot, Own prompt."""
        return self.rules.label

    def budget_label(self) -> str:
        """The budget in words: "light", "60 metric calls", "6 candidates", "no search", "labeled demos"."""
        rules = self.rules
        if not rules.presets:
            return "no search"
        if self.reflection is None and rules.without_reflection:
            return rules.without_reflection
        if self.auto:
            return self.auto
        field = next(f for f in BUDGET_NUMBERS if getattr(self, f))
        return f"{getattr(self, field)} {rules.numbers.get(field, field)}"

    def title(self, task_name: str) -> str:
        other = self.second_model
        models = f"{self.student.name} ← {other.name}" if other else self.student.name
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
