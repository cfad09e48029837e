"""What one GEPA optimization is asked to do: plain data that checks itself when it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from core.errors import ConfigError
from core.metric import FeedbackMode
from core.models import ModelSpec
from core.program import ModuleType, Start, check_start
from core.tasks import SampleSpec, Splits, TaskRef

Budget = Literal["light", "medium", "heavy"]
BUDGETS: tuple[Budget, ...] = ("light", "medium", "heavy")


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything one GEPA job needs; plain data, so it crosses process boundaries as JSON.

    Building one checks it (``ConfigError`` says what to fix), as ``dspy.GEPA`` fails at construction;
    checks that need the sampled splits are in :meth:`check_splits`.
    """

    # What to optimize
    task_ref: TaskRef
    sample: SampleSpec
    student: ModelSpec
    reflection: ModelSpec | None
    module: ModuleType = "predict"
    start: Start = "described"  # the starting program: an entry of core.program.STARTS
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

    def __post_init__(self) -> None:
        if self.reflection is None:
            raise ConfigError("No reflection model chosen.", "Pick a strong model as the reflection model.")
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

    def check_splits(self, splits: Splits) -> None:
        """Raise ConfigError for what GEPA would reject (with an assert) on these splits."""
        n_train = len(splits.train)
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

    def budget_label(self) -> str:
        if self.auto:
            return self.auto
        if self.max_metric_calls:
            return f"{self.max_metric_calls} metric calls"
        return f"{self.max_full_evals} full evals"

    def title(self, task_name: str) -> str:
        assert self.reflection is not None
        return f"GEPA {self.student.name} ← {self.reflection.name} · {task_name} · {self.budget_label()}"

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
