"""THE table of optimizers: GEPA, MIPROv2, few-shot and your own prompt. Each entry holds everything the rest of
GEPA Studio knows of one optimizer: what its reflection model is to it, which budgets it takes (and so which controls
the Optimize page shows), its words (what it does, what its budget means, where cancel takes effect, its end-of-run
notes), the panels of its Optimization page, its estimate and its run. Config checks, planning, the job kind, the
CLI, the run table's labels and the pages read this table; adding an optimizer is one entry here.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from core.config.errors import ConfigError
from core.config.settings import Settings
from core.lm.limits.slots import THREADS_CAPPED_TAG, cap_threads
from core.optimize.compiled import run_compiled
from core.optimize.config import BUDGETS, OPTIMIZERS, Budget, OptimizeConfig
from core.optimize.estimate import Estimate, Plan, estimate_fewshot, estimate_gepa, estimate_miprov2, estimate_own
from core.optimize.progress import ProgressSink
from core.optimize.run import run_gepa
from core.optimize.session import OptimizeResult, RunContext
from core.optimize.teleprompt import compile_fewshot, compile_miprov2, compile_own
from core.tasks import Splits, Task, prepare
from core.tracking.optimizers import use_optimizers
from core.tracking.store import RunStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Words:
    """What the pages and the CLI say of an optimizer; none of it names another optimizer."""

    summary: str  # one line: the picker's help, the CLI's --optimizer help
    does: str  # what it does, under the picker
    budget: str = ""  # what its budget means (the budget control's help; "" when it has none)
    cancel: str = ""  # where cancel and the spending cap take effect
    no_validation: str = ""  # what it does when the task has no validation split
    overshoot: str = ""  # the note beside a progress bar that went past the budget (or the estimate)
    record: str = ""  # the Optimization page, when the run has no search record: what it keeps instead
    start: str = "Start optimization"  # the start button


@dataclass(frozen=True)
class Optimizer:
    """One optimizer: its name and label, its rules (what config checks), its budget controls, its words, the panels
    of its Optimization page, its estimate and its run."""

    name: str
    label: str
    words: Words
    estimate: Callable[[OptimizeConfig, Task, Splits], Estimate]
    run: Callable[[RunContext], OptimizeResult]
    reflection_role: str = "reflection model"  # what the reflection model is to it ("" when it uses none)
    reflection_needed: str = ""  # the words of a missing reflection model ("" when it can go without one)
    presets: tuple[Budget, ...] = BUDGETS  # the auto budgets it offers (none: no budget, no Budget heading)
    numbers: dict[str, str] = field(default_factory=dict)  # budget numbers it takes: field -> unit
    custom: str = ""  # the number the page's "custom" budget sets (a key of numbers; "" offers no custom)
    budget_error: tuple[str, str] = ("", "")  # what to say (and the fix) for a budget it does not take
    without_reflection: str = ""  # its budget's words without a reflection model ("" when it cannot run so)
    instruction_needed: str = ""  # what to say when it needs the instruction and has none
    min_train: int = 1
    controls: frozenset[str] = frozenset()  # its own Optimize-page controls: feedback, minibatch, merge, selector
    seeded: bool = True  # a seed changes what it does (a repeat with N seeds means something)
    panels: tuple[str, ...] = ()  # what its Optimization page shows: search (a search record), trials, candidates
    splits_check: Callable[[OptimizeConfig, Splits], None] | None = None

    @property
    def summary(self) -> str:
        return self.words.summary

    @property
    def cancel(self) -> str:
        return self.words.cancel

    def check_splits(self, config: OptimizeConfig, splits: Splits) -> None:
        """Raise ConfigError for what it would reject on these splits."""
        if self.splits_check:
            self.splits_check(config, splits)


def _gepa_splits(config: OptimizeConfig, splits: Splits) -> None:
    """What GEPA would reject (with an assert) on these splits: a minibatch larger than the train set, a budget that
    cannot evaluate the starting program once."""
    n_train = len(splits.train)
    if n_train < config.reflection_minibatch_size:
        raise ConfigError(
            f"The train set ({n_train} examples) is smaller than the reflection minibatch "
            f"({config.reflection_minibatch_size}).",
            "Raise train examples per label or lower the minibatch size.")
    if config.max_metric_calls is not None:
        n_val = len(splits.val) if splits.val is not None and len(splits.val) else n_train
        if config.max_metric_calls < n_val:
            raise ConfigError(
                f"A budget of {config.max_metric_calls} metric calls cannot even evaluate the starting program once on "
                f"{n_val} validation examples.",
                f"Give at least {n_val + 2 * config.reflection_minibatch_size} metric calls.")


GEPA = Optimizer(
    "gepa", "GEPA", Words(
        summary="GEPA: reflects on failures and proposes instructions; budget light/medium/heavy or metric calls",
        does="GEPA runs the student on training examples, shows its mistakes to the reflection model, and keeps the "
             "instructions that score best on the validation examples.",
        budget="GEPA's budget in metric calls (one student prediction scored = one call).",
        cancel="between GEPA iterations",
        no_validation="GEPA scores candidates on the train examples. A few validation examples per label give it an "
                      "honest signal.",
        overshoot="GEPA ended its last iteration past the budget",
        record="This run has no record of GEPA's search (search.json): it was made before GEPA Studio kept one. "
               "Its progress and cost are below; a new optimization shows the candidates, the per-example grid and "
               "the rejected proposals."),
    estimate_gepa, run_gepa, reflection_needed="reflection model",
    numbers={"max_metric_calls": "metric calls", "max_full_evals": "full evals"}, custom="max_metric_calls",
    controls=frozenset({"feedback", "minibatch", "merge", "selector"}), panels=("search",), splits_check=_gepa_splits)

MIPROV2 = Optimizer(
    "miprov2", "MIPROv2", Words(
        summary="MIPROv2: proposed instructions and bootstrapped demos, Bayesian search; budget light/medium/heavy",
        does="MIPROv2 bootstraps demos with the teacher, has the prompt model propose instructions, and searches "
             "instruction and demo combinations in trials scored on the validation examples.",
        budget="MIPROv2's auto setting: how many instructions, demos and trials.",
        cancel="before proposing, before the trials and between trials",
        no_validation="MIPROv2 scores its trials on the train examples. A few validation examples per label give it "
                      "an honest signal.",
        overshoot="past the estimate: MIPROv2's trials scored more examples than estimated",
        record="MIPROv2 keeps no search record: its trials are below."),
    estimate_miprov2, functools.partial(run_compiled, compile=compile_miprov2),
    reflection_role="prompt model and teacher", reflection_needed="prompt model (MIPROv2 writes instructions with it)",
    budget_error=("MIPROv2's budget is auto: light, medium or heavy.",
                  "Its trial counts come from DSPy's auto settings; give --budget light|medium|heavy."),
    min_train=2, panels=("trials",))

FEWSHOT = Optimizer(
    "fewshot", "Few-shot", Words(
        summary="Few-shot: BootstrapFewShotWithRandomSearch with the reflection model as teacher (LabeledFewShot "
                "without one); budget light/medium/heavy (6/12/18 candidates) or N candidates",
        does="Few-shot has the teacher answer training examples, puts the right answers into the prompt as demos, "
             "and keeps the candidate set of demos that scores best on the validation examples.",
        budget="How many candidate programs: 6, 12 or 18.",
        cancel="between candidate programs",
        no_validation="Few-shot scores its candidates on the train examples. A few validation examples per label "
                      "give it an honest signal.",
        overshoot="past the estimate",
        record="Few-shot keeps no search record: its candidates and the demos it chose are below."),
    estimate_fewshot, functools.partial(run_compiled, compile=compile_fewshot), reflection_role="teacher",
    numbers={"max_full_evals": "candidates"},
    budget_error=("The few-shot optimizer's budget is a number of candidate programs, not metric calls.",
                  "Give light/medium/heavy (6/12/18 candidates) or evals:N for N candidate programs."),
    without_reflection="labeled demos", panels=("candidates",))

OWN = Optimizer(
    "own", "Own prompt", Words(
        summary="Your own prompt: your instruction evaluated as it is, no search",
        does="Your own prompt is evaluated as it is, beside the studio's default program, on the same test "
             "examples: no search, no second model.",
        cancel="during the test evaluation only",
        record="Your own prompt is evaluated as it is: there is no search to show.",
        start="Evaluate my prompt"),
    estimate_own, functools.partial(run_compiled, compile=compile_own), reflection_role="", presets=(),
    instruction_needed="Evaluating your own prompt needs the prompt.", seeded=False)

OPTIMIZERS.update({o.name: o for o in (GEPA, MIPROV2, FEWSHOT, OWN)})


use_optimizers(OPTIMIZERS)  # the run table sits below optimize: the table lends it its entries


def entry(name: str | None) -> Optimizer:
    """The entry of an optimizer's name (a run's ``program`` tag; none, or an unknown one: GEPA's, the default)."""
    return OPTIMIZERS.get(str(name or "gepa")) or GEPA  # type: ignore[return-value]


def estimate(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Metric calls, reflection-model calls and a cost range for the config's optimizer on these splits."""
    return OPTIMIZERS[config.optimizer].estimate(config, task, splits)


def plan_optimization(config: OptimizeConfig, settings: Settings) -> Plan:
    """Load and sample the task, check the config against its splits, and estimate (ConfigError if it cannot run)."""
    task, splits = prepare(config.task_ref, config.sample, settings)
    config.check_splits(splits)
    if task.metric == "judge" and config.reflection is None:
        raise ConfigError(f"Task {task.name!r} is scored by an LLM judge, and the judge is the reflection model: "
                          "this optimization has none.", "Pick a reflection model (it judges the answers).")
    return Plan(config, task, splits, estimate(config, task, splits))


def run_optimization(config: OptimizeConfig, store: RunStore, *, log_dir: Path, plan: Plan | None = None,
                     progress: ProgressSink | None = None, **kwargs: Any) -> OptimizeResult:
    """Run the config's optimizer, save the best program, evaluate original and optimized on the same test
    examples (child runs); every optimizer leaves the same artifacts and metrics (GEPA adds ``search.json``).

    ``log_dir`` is GEPA's run directory (a second call with the same ``log_dir`` and ``run_id`` resumes it);
    ``previous`` is the progress of earlier attempts; ``should_stop`` is the one cancel channel; ``plan`` skips
    re-planning. A dead provider trips a circuit breaker: the result is ``failed`` with the breaker's message.
    """
    if progress:
        progress({"phase": "loading", "message": "Loading the task", "history": []})
    plan = plan or plan_optimization(config, store.settings)
    # A local student's server slots cap the threads (the reflection model is called one at a time); an LM
    # factory's LMs (tests) have no server to ask.
    threads, capped = cap_threads(config.threads, [] if kwargs.get("lm_factory") else [config.student])
    if capped:
        config = replace(config, threads=threads)
        plan = replace(plan, config=config)
        if progress:
            progress({"phase": "loading", "message": f"Threads capped {capped}", "history": []})
        kwargs["on_run_created"] = functools.partial(_note_cap, store, capped, kwargs.get("on_run_created"))
    return OPTIMIZERS[config.optimizer].run(RunContext(config, store, plan, log_dir, progress=progress, **kwargs))


def _note_cap(store: RunStore, capped: str, then: Callable[[str], None] | None, run_id: str) -> None:
    store.set_tags(run_id, {THREADS_CAPPED_TAG: capped})
    if then:
        then(run_id)
