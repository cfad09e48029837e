"""What a budget implies before anything runs, and the plan a job runs exactly: task, splits, estimate.

The metric-call budget of ``auto`` comes from DSPy itself (``AUTO_RUN_SETTINGS`` and ``GEPA.auto_budget``).
The cost range rests on the token assumptions named below; cached answers cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import dspy
from dspy.teleprompt.gepa.gepa import AUTO_RUN_SETTINGS

from core.models import resolve_price
from core.optimize.config import OptimizeConfig
from core.program import make_program, render_prompt, to_examples
from core.settings import Settings
from core.tasks import Splits, Task, prepare

# Token assumptions of the estimate.
CHARS_PER_TOKEN = 4.0  # prompt characters per input token
PROMPT_SAMPLE = 50  # train examples rendered to measure the student's prompt
STUDENT_OUTPUT_TOKENS = {"predict": 15, "cot": 150}  # a label; a short rationale and a label
REFLECTION_FIXED_INPUT_TOKENS = 300  # GEPA's reflection template around the examples
REFLECTION_TOKENS_PER_EXAMPLE = 80  # per minibatch example, besides its text: prediction, gold, feedback
REFLECTION_OUTPUT_TOKENS = 400  # one proposed instruction
OVERSHOOT = 1.1  # GEPA can pass its metric-call budget by up to one iteration


@dataclass(frozen=True)
class Estimate:
    """What a budget implies before anything runs."""

    metric_calls: int
    reflection_calls_low: int
    reflection_calls_high: int
    student_tokens_per_call: tuple[int, int]  # (input, output)
    student_cost_usd: float | None
    reflection_cost_low_usd: float | None
    reflection_cost_high_usd: float | None

    @property
    def cost_low_usd(self) -> float | None:
        if self.student_cost_usd is None or self.reflection_cost_low_usd is None:
            return None
        return self.student_cost_usd + self.reflection_cost_low_usd

    @property
    def cost_high_usd(self) -> float | None:
        if self.student_cost_usd is None or self.reflection_cost_high_usd is None:
            return None
        return self.student_cost_usd * OVERSHOOT + self.reflection_cost_high_usd

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_low_usd"], d["cost_high_usd"] = self.cost_low_usd, self.cost_high_usd
        return d


def metric_call_budget(config: OptimizeConfig, n_train: int, n_val: int) -> int:
    """The number of metric calls GEPA will be given (as dspy.GEPA computes it)."""
    if config.max_metric_calls:
        return int(config.max_metric_calls)
    if config.max_full_evals:
        return int(config.max_full_evals * (n_train + (n_val if n_val else 0)))
    auto = config.auto or "light"
    # auto_budget reads nothing from the instance: call it unbound rather than build a GEPA to ask.
    return int(dspy.GEPA.auto_budget(None, num_preds=1, num_candidates=AUTO_RUN_SETTINGS[auto]["n"],  # type: ignore[arg-type]
                                     valset_size=n_val or n_train))


def estimate(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Metric calls and reflection calls the budget implies, and a cost range from the models' prices."""
    n_train = len(splits.train)
    n_val = len(splits.val) if splits.val is not None else 0
    calls = metric_call_budget(config, n_train, n_val)
    program = make_program(task, config.module, config.instruction or None, start=config.start)
    examples = to_examples(splits.train, task)
    prompt_chars = [sum(len(str(m.get("content", ""))) for m in render_prompt(program, ex))
                    for ex in examples[:PROMPT_SAMPLE]]
    avg_in = int(sum(prompt_chars) / max(1, len(prompt_chars)) / CHARS_PER_TOKEN) + 1
    avg_out = STUDENT_OUTPUT_TOKENS[config.module]
    b = config.reflection_minibatch_size
    val = n_val or n_train
    # Each iteration: b calls on the parent, b on the child, and the full valset when the child improves.
    refl_high = max(1, math.ceil((calls - val) / (2 * b)))
    refl_low = max(1, math.floor((calls - val) / (2 * b + val)))
    s_cost = resolve_price(config.student).cost(calls * avg_in, calls * avg_out)
    r_low = r_high = None
    if config.reflection is not None:
        r_price = resolve_price(config.reflection)
        avg_text = sum(len(str(t)) for t in splits.train[task.text_column]) / max(1, n_train) / CHARS_PER_TOKEN
        r_in = int(avg_in + b * (avg_text + REFLECTION_TOKENS_PER_EXAMPLE) + REFLECTION_FIXED_INPUT_TOKENS)
        r_out = REFLECTION_OUTPUT_TOKENS
        r_low = r_price.cost(refl_low * r_in, refl_low * r_out)
        r_high = r_price.cost(refl_high * r_in, refl_high * r_out)
    return Estimate(calls, refl_low, refl_high, (avg_in, avg_out), s_cost, r_low, r_high)


@dataclass(frozen=True, eq=False)
class Plan:
    """What a job will do, computed once: the page shows it, the CLI prints it, the job stores and runs it."""

    config: OptimizeConfig
    task: Task
    splits: Splits
    estimate: Estimate

    @property
    def title(self) -> str:
        return self.config.title(self.task.name)


def plan_optimization(config: OptimizeConfig, settings: Settings) -> Plan:
    """Load and sample the task, check the config against its splits, and estimate (ConfigError if it cannot run)."""
    task, splits = prepare(config.task_ref, config.sample, settings)
    config.check_splits(splits)
    return Plan(config, task, splits, estimate(config, task, splits))
