"""The optimizers besides GEPA, wrapped: MIPROv2, few-shot (BootstrapFewShotWithRandomSearch, or LabeledFewShot
without a teacher) and your own prompt. Each is ``compile(ctx) -> Compiled``: it reports progress through
``ctx.report`` and looks at ``ctx.should_stop`` where DSPy lets it (see each function); ``core.optimize.compiled``
runs it inside the shared shell (MLflow run, cost meters, paired test evaluation).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import dspy
from dspy.teleprompt import BootstrapFewShotWithRandomSearch, LabeledFewShot, MIPROv2

from core.config.errors import ConfigError
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import FEWSHOT_BOOTSTRAPPED, FEWSHOT_DEMOS, fewshot_candidates
from core.program.program import make_program
from core.tasks import Task

logger = logging.getLogger(__name__)


@dataclass
class CompileContext:
    """What an optimizer's compile step gets from the shell."""

    config: OptimizeConfig
    task: Task
    program: dspy.Module  # the starting program (the "original" of the paired evaluation)
    train: list[dspy.Example]
    val: list[dspy.Example] | None
    student_lm: Any
    reflection_lm: Any  # the prompt model / teacher; None when there is none
    metric: Callable[..., float]  # the task's score (0..1), counted as metric calls
    report: Callable[..., None]  # report(message=..., iteration=..., best_val_score=..., candidates=...)
    should_stop: Callable[[], bool]


@dataclass
class Compiled:
    program: dspy.Module
    stopped: bool = False  # the cancel channel (or the spending cap) stopped it; ``program`` is the best so far
    candidates: int = 1
    best_val_score: float | None = None  # 0..1 on the validation set
    trials: list[dict[str, Any]] = field(default_factory=list)  # what was tried: logged as candidates.json


def starting_program(config: OptimizeConfig, task: Task) -> dspy.Module:
    """The "original" side of the paired evaluation: the configured start; for ``own``, the default described
    program, so Compare shows your prompt against the studio's default."""
    if config.rules.instruction_needed:  # it evaluates the instruction given: beside the default
        return make_program(task, config.module, None, start="described")
    return make_program(task, config.module, config.instruction or None, start=config.start)


def compile_own(ctx: CompileContext) -> Compiled:
    """Your own prompt: no search and no calls; the program is your instruction, as typed."""
    ctx.report(message="Your own prompt: nothing to search")
    return Compiled(make_program(ctx.task, ctx.config.module, ctx.config.instruction, start="own"))


def compile_fewshot(ctx: CompileContext) -> Compiled:
    """LabeledFewShot without a teacher (no calls); with one, BootstrapFewShotWithRandomSearch: zero-shot, labeled,
    unshuffled and N random bootstrapped programs, each scored on the validation set (the train set without one).
    Candidates are compiled one at a time (DSPy's ``restrict``), so progress and cancel come between candidates."""
    config = ctx.config
    train = list(ctx.train)
    random.Random(config.seed).shuffle(train)  # the seed picks the demos; DSPy's own candidate seeds are fixed
    if ctx.reflection_lm is None:
        ctx.report(message=f"Picking up to {FEWSHOT_DEMOS} labeled demos")
        return Compiled(LabeledFewShot(k=FEWSHOT_DEMOS).compile(ctx.program, trainset=train, sample=True))
    n = fewshot_candidates(config)
    search = BootstrapFewShotWithRandomSearch(
        metric=ctx.metric, teacher_settings={"lm": ctx.reflection_lm}, max_bootstrapped_demos=FEWSHOT_BOOTSTRAPPED,
        max_labeled_demos=FEWSHOT_DEMOS, num_candidate_programs=n, num_threads=config.threads)
    best: Compiled | None = None
    trials: list[dict[str, Any]] = []
    names = {-3: "zero-shot", -2: "labeled demos", -1: "bootstrapped, unshuffled"}
    for i, seed in enumerate(range(-3, n)):
        if ctx.should_stop():
            break
        ctx.report(message=f"Candidate {i + 1} of {n + 3}: {names.get(seed, f'bootstrapped, seed {seed}')}",
                   iteration=i + 1)
        program = search.compile(ctx.program, trainset=train, valset=ctx.val or train, restrict=[seed])
        score = float(program.candidate_programs[0]["score"]) / 100  # dspy.Evaluate scores in percent
        del program.candidate_programs  # not part of the program's state
        trials.append({"candidate": i, "seed": seed, "score": score,
                       "demos": sum(len(p.demos) for _, p in program.named_predictors())})
        if best is None or score > (best.best_val_score or 0.0):
            best = Compiled(program, best_val_score=score)
        ctx.report(candidates=i + 1, best_val_score=best.best_val_score)
    if best is None:  # stopped before its first candidate
        return Compiled(ctx.program.deepcopy(), stopped=True, candidates=0)
    best.stopped, best.candidates, best.trials = len(trials) < n + 3, len(trials), trials
    return best


class _Stopped(Exception):
    """Cancel between MIPROv2's steps."""


class _StudioMIPRO(MIPROv2):
    """MIPROv2 with progress and cancel between its steps and between trials (hooks on its step methods)."""

    def __init__(self, ctx: CompileContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx, self.trials_seen, self.stopped = ctx, 0, False

    def _bootstrap_fewshot_examples(self, *args: Any, **kwargs: Any) -> Any:
        self.ctx.report(message="Bootstrapping few-shot demo sets")
        return super()._bootstrap_fewshot_examples(*args, **kwargs)

    def _propose_instructions(self, *args: Any, **kwargs: Any) -> Any:
        if self.ctx.should_stop():
            raise _Stopped
        self.ctx.report(message="Proposing instructions with the prompt model")
        return super()._propose_instructions(*args, **kwargs)

    def _optimize_prompt_parameters(self, *args: Any, **kwargs: Any) -> Any:
        if self.ctx.should_stop():
            raise _Stopped
        self.ctx.report(message="Evaluating the default program")
        return super()._optimize_prompt_parameters(*args, **kwargs)

    def _select_and_insert_instructions_and_demos(self, candidate_program: Any, instruction_candidates: Any,
                                                  demo_candidates: Any, trial: Any, *args: Any) -> Any:
        if self.ctx.should_stop():
            import optuna

            self.stopped = True
            trial.study.stop()  # the study ends after this trial, which is pruned unevaluated
            raise optuna.TrialPruned()
        self.trials_seen += 1
        best = trial.study.best_value if trial.study.best_trials else None
        self.ctx.report(message=f"Trial {self.trials_seen}", iteration=self.trials_seen, candidates=self.trials_seen,
                        best_val_score=None if best is None else float(best) / 100)
        return super()._select_and_insert_instructions_and_demos(candidate_program, instruction_candidates,
                                                                 demo_candidates, trial, *args)


def compile_miprov2(ctx: CompileContext) -> Compiled:
    """MIPROv2 with ``auto`` light/medium/heavy: bootstrapped demo sets (the reflection model as teacher),
    instructions proposed by the reflection model (the prompt model), then Bayesian search over both. Cancel is
    seen before proposing, before the trials and before each trial (not inside bootstrapping or proposing)."""
    try:
        import optuna  # noqa: F401 - MIPROv2's search needs it; fail before any call is spent
    except ModuleNotFoundError:
        raise ConfigError("MIPROv2 needs the optuna package.", "Install it: pip install optuna") from None
    config = ctx.config
    mipro = _StudioMIPRO(ctx, metric=ctx.metric, prompt_model=ctx.reflection_lm, task_model=ctx.student_lm,
                         teacher_settings={"lm": ctx.reflection_lm}, auto=config.auto or "light",
                         num_threads=config.threads, seed=config.seed, verbose=False)
    try:
        program = mipro.compile(ctx.program, trainset=ctx.train, valset=ctx.val)
    except _Stopped:
        return Compiled(ctx.program.deepcopy(), stopped=True, candidates=0)
    logs = getattr(program, "trial_logs", {}) or {}
    trials = [{"trial": k, **{key: v.get(key) for key in ("full_eval_score", "mb_score", "total_eval_calls_so_far")
                              if v.get(key) is not None}} for k, v in sorted(logs.items())]
    score = getattr(program, "score", None)
    for attr in ("trial_logs", "score", "prompt_model_total_calls", "total_calls", "mb_candidate_programs",
                 "candidate_programs"):
        if hasattr(program, attr):
            delattr(program, attr)  # statistics, not the program's state
    return Compiled(program, stopped=mipro.stopped, candidates=mipro.trials_seen,
                    best_val_score=None if score is None else float(score) / 100, trials=trials)
