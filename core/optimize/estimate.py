"""What a budget implies before anything runs, per optimizer, and the plan a job runs exactly: task, splits,
estimate (``core.optimize.optimizers`` picks the estimate of the config's optimizer).

Budgets come from DSPy itself: GEPA's ``auto`` from ``AUTO_RUN_SETTINGS`` and ``GEPA.auto_budget``, MIPROv2's
trial count from its own auto settings and ``_set_num_trials_from_num_candidates``. The cost range rests on the
token assumptions named below; cached answers cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import dspy
from dspy.teleprompt.gepa.gepa import AUTO_RUN_SETTINGS
from dspy.teleprompt.mipro_optimizer_v2 import AUTO_RUN_SETTINGS as MIPRO_AUTO
from dspy.teleprompt.mipro_optimizer_v2 import MIN_MINIBATCH_SIZE, MIPROv2

from core.lm.models import resolve_price
from core.optimize.config import OptimizeConfig
from core.program.program import make_program, render_prompt, to_examples
from core.tasks import Splits, Task

# Token assumptions of the estimate.
CHARS_PER_TOKEN = 4.0  # prompt characters per input token
PROMPT_SAMPLE = 50  # train examples rendered to measure the student's prompt
STUDENT_OUTPUT_TOKENS = {"predict": 15, "cot": 150}  # a label; a short rationale and a label
REFLECTION_FIXED_INPUT_TOKENS = 300  # GEPA's reflection template around the examples
REFLECTION_TOKENS_PER_EXAMPLE = 80  # per minibatch example, besides its text: prediction, gold, feedback
REFLECTION_OUTPUT_TOKENS = 400  # one proposed instruction
PROGRAM_PROMPT_TOKENS = 200  # your own program: each predictor's instruction and field markers around the inputs
OVERSHOOT = 1.1  # GEPA can pass its metric-call budget by up to one iteration
# MIPROv2 and few-shot (the settings core.optimize.fewshot passes to DSPy, and DSPy's own defaults)
MIPRO_DEMOS = 4 + 4  # max_bootstrapped_demos + max_labeled_demos
MIPRO_MINIBATCH = 35  # MIPROv2.compile's minibatch_size
MIPRO_FULL_EVAL_STEPS = 5  # MIPROv2.compile's minibatch_full_eval_steps
PROPOSER_FIXED_CALLS = 10 + 2  # MIPROv2's own count: data summarizer calls + program-aware proposer (1 predictor)
PROPOSER_INPUT_TOKENS = 1500  # one grounded-proposer prompt: data summary, program, demos, tip
PROPOSER_OUTPUT_TOKENS = 300
FEWSHOT_DEMOS = 16  # BootstrapFewShotWithRandomSearch's max_labeled_demos (bootstrapped ones fill it first)
FEWSHOT_BOOTSTRAPPED = 4  # its max_bootstrapped_demos
DEMO_EXTRA_TOKENS = 20  # a demo's field markers and label, besides its text


@dataclass(frozen=True)
class Estimate:
    """What a budget implies before anything runs."""

    metric_calls: int
    reflection_calls_low: int
    reflection_calls_high: int
    student_tokens_per_call: tuple[int, int]  # (input, output)
    student_cost_usd: float | None
    reflection_cost_low_usd: float | None  # the reflection model: GEPA's reflection, MIPROv2's prompt model, a teacher
    reflection_cost_high_usd: float | None
    # The paired test evaluations after the search (not in the cost range, except for "own", which runs nothing else).
    test_calls: int = 0
    test_cost_usd: float | None = None

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


def metric_call_budget(config: OptimizeConfig, n_train: int, n_val: int, num_preds: int = 1) -> int:
    """The number of metric calls GEPA will be given (as dspy.GEPA computes it for ``num_preds`` predictors)."""
    if config.max_metric_calls:
        return int(config.max_metric_calls)
    if config.max_full_evals:
        return int(config.max_full_evals * (n_train + (n_val if n_val else 0)))
    auto = config.auto or "light"
    # auto_budget reads nothing from the instance: call it unbound rather than build a GEPA to ask.
    return int(dspy.GEPA.auto_budget(None, num_preds=num_preds,
                                     num_candidates=AUTO_RUN_SETTINGS[auto]["n"],  # type: ignore[arg-type]
                                     valset_size=n_val or n_train))


def _student_tokens(config: OptimizeConfig, task: Task, splits: Splits) -> tuple[int, int]:
    """(input, output) tokens of one student call of the starting program, measured on rendered prompts; for your
    own program (whose code only its job runs), of one example through all its predictors, from its inputs' length
    and a prompt of :data:`PROGRAM_PROMPT_TOKENS` around them at each step."""
    if task.program:
        n = task.num_predictors
        return int(n * (_text_tokens(task, splits) + PROGRAM_PROMPT_TOKENS)) + 1, n * STUDENT_OUTPUT_TOKENS["cot"]
    program = make_program(task, config.module, config.instruction or None, start=config.start)
    examples = to_examples(splits.train, task)
    prompt_chars = [sum(len(str(m.get("content", ""))) for m in render_prompt(program, ex))
                    for ex in examples[:PROMPT_SAMPLE]]
    tokens_in = int(sum(prompt_chars) / max(1, len(prompt_chars)) / CHARS_PER_TOKEN) + 1
    return tokens_in, STUDENT_OUTPUT_TOKENS[config.module]


def _text_tokens(task: Task, splits: Splits) -> float:
    n_train = len(splits.train)
    chars = sum(len(str(t)) for f in task.input_specs for t in splits.train[f.column])
    return chars / max(1, n_train) / CHARS_PER_TOKEN


def _test(config: OptimizeConfig, splits: Splits, tokens: tuple[int, int], task: Task) -> tuple[int, float | None]:
    """The paired test evaluations' LM calls (one per predictor per example, both programs) and cost (``tokens``:
    one example's, through every predictor)."""
    runs = 2 * len(splits.test)
    return runs * task.num_predictors, resolve_price(config.student).cost(runs * tokens[0], runs * tokens[1])


def estimate_gepa(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """GEPA: metric calls and reflection calls the budget implies, and a cost range from the models' prices."""
    n_train = len(splits.train)
    n_val = len(splits.val) if splits.val is not None else 0
    calls = metric_call_budget(config, n_train, n_val, task.num_predictors)
    avg_in, avg_out = _student_tokens(config, task, splits)
    b = config.reflection_minibatch_size
    val = n_val or n_train
    # Each iteration: b calls on the parent, b on the child, and the full valset when the child improves.
    refl_high = max(1, math.ceil((calls - val) / (2 * b)))
    refl_low = max(1, math.floor((calls - val) / (2 * b + val)))
    s_cost = resolve_price(config.student).cost(calls * avg_in, calls * avg_out)
    r_low = r_high = None
    if config.reflection is not None:
        r_price = resolve_price(config.reflection)
        avg_text = _text_tokens(task, splits)
        r_in = int(avg_in + b * (avg_text + REFLECTION_TOKENS_PER_EXAMPLE) + REFLECTION_FIXED_INPUT_TOKENS)
        r_out = REFLECTION_OUTPUT_TOKENS
        r_low = r_price.cost(refl_low * r_in, refl_low * r_out)
        r_high = r_price.cost(refl_high * r_in, refl_high * r_out)
    return Estimate(calls, refl_low, refl_high, (avg_in, avg_out), s_cost, r_low, r_high,
                    *_test(config, splits, (avg_in, avg_out), task))


def mipro_settings(config: OptimizeConfig, task: Task, n_train: int, n_val: int) -> dict[str, int | bool]:
    """What MIPROv2's ``auto`` makes of these splits (as ``MIPROv2.compile`` computes it): trials, candidates,
    the validation size, whether trials use minibatches, and the train examples it bootstraps from."""
    n = MIPRO_AUTO[config.auto or "light"]["n"]
    if not n_val:  # MIPROv2 keeps 80% of the train set for validation
        n_val = min(1000, max(1, int(n_train * 0.8)))
        n_train -= n_val
    val = min(n_val, MIPRO_AUTO[config.auto or "light"]["val_size"])
    # It reads only the program's predictor count (your own program's, as planned: its code runs only in its job).
    program = SimpleNamespace(predictors=lambda: [None] * task.num_predictors)
    trials = MIPROv2._set_num_trials_from_num_candidates(None, program, False, n)  # type: ignore[arg-type]
    return {"trials": trials, "instruction_candidates": int(n * 0.5), "demo_sets": n, "val": val,
            "minibatch": val > MIN_MINIBATCH_SIZE, "train": n_train}


def estimate_miprov2(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """MIPROv2 (``auto``): the default program on the validation set, then each trial on it (or on a minibatch,
    with a full evaluation every few trials); the prompt model's proposer calls; the teacher's bootstrap calls."""
    n_val = len(splits.val) if splits.val is not None else 0
    m = mipro_settings(config, task, len(splits.train), n_val)
    trials, val = int(m["trials"]), int(m["val"])
    if m["minibatch"]:
        trial_calls = MIPRO_MINIBATCH * trials + val * (trials // MIPRO_FULL_EVAL_STEPS + 1)
    else:
        trial_calls = val * trials
    bootstraps = int(m["demo_sets"]) + 1  # the unshuffled set and one per seed; zero-shot and labeled cost nothing
    boot_low, boot_high = bootstraps, bootstraps * int(m["train"])  # each stops once its demos are found
    avg_in, avg_out = _student_tokens(config, task, splits)
    with_demos = int(avg_in + MIPRO_DEMOS * (_text_tokens(task, splits) + DEMO_EXTRA_TOKENS))
    student_calls = val + trial_calls
    s_cost = resolve_price(config.student).cost(student_calls * with_demos, student_calls * avg_out)
    proposer = PROPOSER_FIXED_CALLS + int(m["instruction_candidates"])
    r_low = r_high = None
    if config.reflection is not None:
        r_price = resolve_price(config.reflection)
        r_low, r_high = (r_price.cost(proposer * PROPOSER_INPUT_TOKENS + b * with_demos,
                                      proposer * PROPOSER_OUTPUT_TOKENS + b * avg_out) for b in (boot_low, boot_high))
    return Estimate(student_calls + boot_low, proposer + boot_low, proposer + boot_high, (with_demos, avg_out),
                    s_cost, r_low, r_high, *_test(config, splits, (with_demos, avg_out), task))


def fewshot_candidates(config: OptimizeConfig) -> int:
    """BootstrapFewShotWithRandomSearch's random candidates: ``max_full_evals``, else MIPROv2's auto ``n``."""
    return int(config.max_full_evals or MIPRO_AUTO[config.auto or "light"]["n"])


def estimate_fewshot(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Few-shot with a teacher: zero-shot, labeled, unshuffled and N random bootstrapped programs, each scored on
    the validation set (the train set when there is none); the teacher's bootstrap calls. Without a teacher
    (LabeledFewShot): no calls at all before the test evaluation."""
    avg_in, avg_out = _student_tokens(config, task, splits)
    with_demos = int(avg_in + FEWSHOT_DEMOS * (_text_tokens(task, splits) + DEMO_EXTRA_TOKENS))
    test = _test(config, splits, (with_demos, avg_out), task)
    if config.reflection is None:
        return Estimate(0, 0, 0, (with_demos, avg_out), 0.0, 0.0, 0.0, *test)
    n_val = len(splits.val) if splits.val is not None and len(splits.val) else len(splits.train)
    n = fewshot_candidates(config)
    student_calls = (n + 3) * n_val
    boot_low, boot_high = n + 1, (n + 1) * len(splits.train)
    s_cost = resolve_price(config.student).cost(student_calls * with_demos, student_calls * avg_out)
    r_price = resolve_price(config.reflection)
    r_low, r_high = (r_price.cost(b * with_demos, b * avg_out) for b in (boot_low, boot_high))
    return Estimate(student_calls + boot_low, boot_low, boot_high, (with_demos, avg_out), s_cost, r_low, r_high, *test)


def estimate_own(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Your own prompt: no search; the paired test evaluation is all it runs, so that is its cost."""
    tokens = _student_tokens(config, task, splits)
    calls, cost = _test(config, splits, tokens, task)
    return Estimate(0, 0, 0, tokens, cost, 0.0, 0.0, calls, cost)


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
