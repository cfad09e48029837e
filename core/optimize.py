"""GEPA on a student model with a reflection model: configuration, estimate, and one run with progress.

``run_optimization`` does the work in the calling process; ``core.jobs`` runs it as a background job
(its own OS process), and the CLI runs it in the foreground. Every result lands in MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, TypedDict

import dspy

from core.baseline import run_evaluation, spec_params
from core.data import Splits, Task
from core.errors import ConfigError
from core.metric import FeedbackMode, make_metric
from core.models import ModelSpec, Price, build_lm, resolve_price
from core.program import (
    ModuleType,
    fingerprint,
    get_instruction,
    make_program,
    program_to_dict,
    render_prompt,
    to_examples,
)
from core.store import TAG, RunStore
from core.tasks import SampleSpec, TaskRef, prepare, split_fingerprint

logger = logging.getLogger(__name__)

Budget = Literal["light", "medium", "heavy"]
AUTO_CANDIDATES = {"light": 6, "medium": 12, "heavy": 18}  # dspy.teleprompt.gepa.gepa.AUTO_RUN_SETTINGS
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class OptimizeConfig:
    """Everything one GEPA job needs; plain data, so it crosses process boundaries as JSON."""

    # What to optimize
    task_ref: TaskRef
    sample: SampleSpec
    student: ModelSpec
    reflection: ModelSpec | None
    module: ModuleType = "predict"
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

    def budget_label(self) -> str:
        if self.auto:
            return self.auto
        if self.max_metric_calls:
            return f"{self.max_metric_calls} metric calls"
        return f"{self.max_full_evals} full evals"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OptimizeConfig":
        d = dict(d)
        d["task_ref"] = TaskRef.from_dict(d["task_ref"])
        d["sample"] = SampleSpec.from_dict(d["sample"])
        d["student"] = ModelSpec.from_dict(d["student"])
        d["reflection"] = ModelSpec.from_dict(d["reflection"]) if d.get("reflection") else None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def validate(self, splits: Splits | None = None, task: Task | None = None) -> None:
        """Raise ConfigError for what GEPA would reject (with an assert) or what cannot work."""
        if self.reflection is None:
            raise ConfigError("No reflection model chosen.", "Pick a strong model as the reflection model.")
        chosen = [x for x in (self.auto, self.max_metric_calls, self.max_full_evals) if x not in (None, 0)]
        if self.auto not in (None, "light", "medium", "heavy"):
            raise ConfigError(f"Unknown budget {self.auto!r}.", "Use light, medium or heavy, or a number of metric calls.")
        if (self.max_metric_calls is not None and self.max_metric_calls <= 0) or (
                self.max_full_evals is not None and self.max_full_evals <= 0):
            raise ConfigError("The budget must be more than zero.", "Give a positive number of metric calls or full evaluations.")
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
        if self.feedback not in ("rule", "judge"):
            raise ConfigError(f"Unknown feedback mode {self.feedback!r}.", "Use 'rule' or 'judge'.")
        if splits is not None:
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
        return self.student_cost_usd * 1.1 + self.reflection_cost_high_usd  # GEPA can overshoot slightly

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost_low_usd"], d["cost_high_usd"] = self.cost_low_usd, self.cost_high_usd
        return d


def metric_call_budget(config: OptimizeConfig, n_train: int, n_val: int) -> int:
    """The number of metric calls GEPA will be given (as dspy.GEPA computes it)."""
    if config.max_metric_calls:
        return int(config.max_metric_calls)
    val = n_val or n_train
    if config.max_full_evals:
        return int(config.max_full_evals * (n_train + (n_val if n_val else 0)))
    gepa = dspy.GEPA(metric=lambda *a, **k: 0.0, auto=config.auto, reflection_lm=dspy.LM("openai/none", api_key="x"))
    return int(gepa.auto_budget(num_preds=1, num_candidates=AUTO_CANDIDATES[config.auto or "light"], valset_size=val))


def estimate(config: OptimizeConfig, task: Task, splits: Splits) -> Estimate:
    """Metric calls and reflection calls the budget implies, and a cost range from the models' prices."""
    n_train = len(splits.train)
    n_val = len(splits.val) if splits.val is not None else 0
    calls = metric_call_budget(config, n_train, n_val)
    program = make_program(task, config.module)
    examples = to_examples(splits.train, task)
    prompt_chars = [sum(len(str(m.get("content", ""))) for m in render_prompt(program, ex)) for ex in examples[:50]]
    avg_in = int(sum(prompt_chars) / max(1, len(prompt_chars)) / CHARS_PER_TOKEN) + 1
    avg_out = 15 if config.module == "predict" else 150
    b = config.reflection_minibatch_size
    val = n_val or n_train
    # Each iteration: b calls on the parent, b on the child, and the full valset when the child improves.
    refl_high = max(1, math.ceil((calls - val) / (2 * b)))
    refl_low = max(1, math.floor((calls - val) / (2 * b + val)))
    student_price = resolve_price(config.student)
    s_cost = student_price.cost(calls * avg_in, calls * avg_out)
    r_low = r_high = None
    if config.reflection is not None:
        r_price = resolve_price(config.reflection)
        avg_text = sum(len(str(t)) for t in splits.train[task.text_column]) / max(1, n_train) / CHARS_PER_TOKEN
        r_in = int(avg_in + b * (avg_text + 80) + 300)
        r_out = 400
        r_low = r_price.cost(refl_low * r_in, refl_low * r_out)
        r_high = r_price.cost(refl_high * r_in, refl_high * r_out)
    return Estimate(calls, refl_low, refl_high, (avg_in, avg_out), s_cost, r_low, r_high)


# Progress ------------------------------------------------------------------------------------


class ProgressPoint(TypedDict):
    t: float
    metric_calls: int
    iteration: int
    best_score: float | None
    val_score: float | None


class JobProgress(TypedDict, total=False):
    phase: str  # loading | optimizing | evaluating | done | stopped | failed
    message: str
    metric_calls_used: int
    metric_calls_budget: int
    iteration: int
    candidates: int
    best_val_score: float | None
    elapsed_s: float
    student_cost_usd: float
    reflection_cost_usd: float
    total_cost_usd: float
    attempts: int
    resumed_from_metric_calls: int
    history: list[ProgressPoint]
    updated_at: float


class CostMeter:
    """Running spend of one LM, read from its history (cache hits cost nothing)."""

    def __init__(self, lm: Any, price: Price, base_usd: float = 0.0) -> None:
        self.lm, self.price, self.total = lm, price, base_usd
        self.input_tokens = self.output_tokens = 0
        self._seen: str | None = None
        self._lock = threading.Lock()

    def update(self) -> float:
        with self._lock:
            history = list(self.lm.history)
            new = []
            for entry in reversed(history):
                if entry.get("uuid") == self._seen:
                    break
                new.append(entry)
            if history:
                self._seen = history[-1].get("uuid")
            for entry in new:
                usage = entry.get("usage") or {}
                inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
                self.input_tokens += inp
                self.output_tokens += out
                self.total += self.price.cost(inp, out) or 0.0
            return self.total


ProgressSink = Callable[[JobProgress], None]


class ProgressCallback:
    """GEPA callback that keeps a JobProgress and hands it to a sink (throttled); never raises."""

    def __init__(self, sink: ProgressSink, budget: int, student: CostMeter, reflection: CostMeter,
                 previous: JobProgress | None = None, store: RunStore | None = None, run_id: str | None = None,
                 min_interval_s: float = 0.25) -> None:
        prev = previous or {}
        self.sink, self.student, self.reflection = sink, student, reflection
        self.store, self.run_id = store, run_id
        self.started = time.time()
        self.prev_elapsed = float(prev.get("elapsed_s", 0.0))
        self.min_interval_s = min_interval_s
        self._last_emit = 0.0
        self._lock = threading.Lock()
        self.state: JobProgress = {
            "phase": "optimizing", "message": "", "metric_calls_used": int(prev.get("metric_calls_used", 0)),
            "metric_calls_budget": budget, "iteration": int(prev.get("iteration", 0)),
            "candidates": int(prev.get("candidates", 0)), "best_val_score": prev.get("best_val_score"),
            "elapsed_s": self.prev_elapsed, "student_cost_usd": student.total, "reflection_cost_usd": reflection.total,
            "total_cost_usd": student.total + reflection.total, "attempts": int(prev.get("attempts", 0)) + 1,
            "resumed_from_metric_calls": int(prev.get("metric_calls_used", 0)),
            "history": list(prev.get("history", [])),
        }

    def total_cost(self) -> float:
        return self.student.update() + self.reflection.update()

    def emit(self, force: bool = False, **changes: Any) -> None:
        with self._lock:
            self.state.update(changes)  # type: ignore[typeddict-item]
            now = time.time()
            if not force and now - self._last_emit < self.min_interval_s:
                return
            self._last_emit = now
            self.state["elapsed_s"] = self.prev_elapsed + (now - self.started)
            self.state["student_cost_usd"] = self.student.update()
            self.state["reflection_cost_usd"] = self.reflection.update()
            self.state["total_cost_usd"] = self.state["student_cost_usd"] + self.state["reflection_cost_usd"]
            self.state["updated_at"] = now
            snapshot = json.loads(json.dumps(self.state, default=str))
        try:
            self.sink(snapshot)  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - progress must never break a run
            logger.warning("progress sink failed: %s", exc)

    def _point(self, val_score: float | None = None) -> None:
        self.state["history"].append({
            "t": round(time.time() - self.started + self.prev_elapsed, 3),
            "metric_calls": self.state["metric_calls_used"], "iteration": self.state["iteration"],
            "best_score": self.state["best_val_score"], "val_score": val_score,
        })

    # GEPA callback methods (gepa.core.callbacks.GEPACallback)
    def on_optimization_start(self, event: dict[str, Any]) -> None:
        self.emit(force=True, phase="optimizing")

    def on_iteration_start(self, event: dict[str, Any]) -> None:
        self.emit(iteration=int(event.get("iteration", 0)))

    def on_budget_updated(self, event: dict[str, Any]) -> None:
        self.emit(metric_calls_used=int(event.get("metric_calls_used", 0)))

    def on_valset_evaluated(self, event: dict[str, Any]) -> None:
        score = float(event.get("average_score", 0.0))
        best = self.state.get("best_val_score")
        self.state["candidates"] = max(self.state.get("candidates", 0), int(event.get("candidate_idx", 0)) + 1)
        if best is None or score > best:
            self.state["best_val_score"] = score
        self._point(score)
        self.emit(force=True)
        if self.store and self.run_id:
            try:
                self.store.log_metrics(self.run_id, {
                    "val_score": score, "best_val_score": float(self.state["best_val_score"] or 0.0),
                    "metric_calls_used": self.state["metric_calls_used"], "candidates": self.state["candidates"],
                    "running_cost_usd": self.state["total_cost_usd"],
                }, step=self.state["metric_calls_used"])
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not log progress to MLflow: %s", exc)

    def on_iteration_end(self, event: dict[str, Any]) -> None:
        self.emit(force=True, iteration=int(event.get("iteration", 0)))


# Running -------------------------------------------------------------------------------------


@dataclass
class OptimizeResult:
    run_id: str
    status: Literal["succeeded", "cancelled"]
    stop_reason: str
    best_instruction: str
    original_instruction: str
    original_eval_run_id: str | None = None
    optimized_eval_run_id: str | None = None
    original_accuracy: float | None = None
    optimized_accuracy: float | None = None
    progress: JobProgress = field(default_factory=dict)  # type: ignore[assignment]
    prompt_uri: str | None = None


LMFactory = Callable[[ModelSpec], Any]


def _stop_file(log_dir: Path) -> Path:
    return log_dir / "gepa.stop"


def request_stop(log_dir: Path) -> None:
    """Ask a running GEPA (in any process) to stop after its current iteration."""
    log_dir.mkdir(parents=True, exist_ok=True)
    _stop_file(log_dir).touch()


def _config_params(config: OptimizeConfig, task: Task, splits: Splits) -> dict[str, Any]:
    return {
        **{f"student_{k}": v for k, v in spec_params(config.student).items()},
        **({f"reflection_{k}": v for k, v in spec_params(config.reflection).items()} if config.reflection else {}),
        "task": task.name, "task_source": config.task_ref.source or config.task_ref.kind,
        **{f"sample_{k}": v for k, v in config.sample.to_dict().items()},
        "n_train": len(splits.train), "n_val": len(splits.val) if splits.val is not None else 0, "n_test": len(splits.test),
        "budget": config.budget_label(), "max_cost_usd": config.max_cost_usd, "module": config.module,
        "reflection_minibatch_size": config.reflection_minibatch_size, "use_merge": config.use_merge,
        "threads": config.threads, "seed": config.seed, "feedback": config.feedback,
        "test_fingerprint": split_fingerprint(splits.test, task),
    }


def prompt_name(task_name: str, student: ModelSpec) -> str:
    """The prompt-registry name for a task and student (letters, digits, - _ . only)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{task_name}-{student.name}").strip("-")[:100]


def register_prompt(store: RunStore, task: Task, student: ModelSpec, instruction: str, accuracy: float | None,
                    run_id: str, job_id: str | None) -> str | None:
    """Register the optimized instruction as a new prompt version; move alias ``best`` if it is the best."""
    try:
        import mlflow

        mlflow.set_tracking_uri(store.settings.tracking_uri)
        name = prompt_name(task.name, student)
        tags = {"task": task.name, "student": student.name, "run_id": run_id, "job_id": job_id or "",
                "test_accuracy": "" if accuracy is None else f"{accuracy:.6f}"}
        version = mlflow.genai.register_prompt(name=name, template=instruction, commit_message=f"GEPA job {job_id}",
                                               tags=tags)
        best_acc = None
        try:
            best = mlflow.genai.load_prompt(f"prompts:/{name}@best")
            best_acc = float(best.tags.get("test_accuracy") or "nan")
        except Exception:  # noqa: BLE001 - no best yet
            best_acc = None
        if best_acc is None or best_acc != best_acc or (accuracy is not None and accuracy >= best_acc):
            mlflow.genai.set_prompt_alias(name, alias="best", version=version.version)
        uri = f"prompts:/{name}/{version.version}"
        store.set_tags(run_id, {f"{TAG}prompt_uri": uri})
        return uri
    except Exception as exc:  # noqa: BLE001 - the registry is an extra; the run's artifacts have the prompt
        logger.warning("could not register the prompt: %s", exc)
        return None


def run_optimization(
    config: OptimizeConfig,
    store: RunStore,
    *,
    log_dir: Path,
    job_id: str | None = None,
    run_id: str | None = None,
    progress: ProgressSink | None = None,
    previous: JobProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    lm_factory: LMFactory | None = None,
    prepared: tuple[Task, Splits] | None = None,
    on_run_created: Callable[[str], None] | None = None,
    extra_callbacks: list[Any] | None = None,
) -> OptimizeResult:
    """Run GEPA, save the best program, evaluate original and optimized on the same test examples.

    ``log_dir`` is GEPA's run directory: a second call with the same ``log_dir`` (and ``run_id``)
    resumes from the last completed iteration. ``previous`` is the progress of earlier attempts.
    """
    sink = progress or (lambda p: None)
    sink({"phase": "loading", "message": "Loading the task", "history": []})
    task, splits = prepared or prepare(config.task_ref, config.sample, store.settings)
    config.validate(splits, task)
    assert config.reflection is not None
    make_lm = lm_factory or (lambda spec: build_lm(spec, cache=config.cache))
    student_lm, reflection_lm = make_lm(config.student), make_lm(config.reflection)
    train, test = to_examples(splits.train, task), splits.test
    val = to_examples(splits.val, task) if splits.val is not None and len(splits.val) else None
    budget = metric_call_budget(config, len(train), len(val or []))

    if run_id is None:
        run_id = store.start_run("optimization", task.name, run_name=f"GEPA · {config.student.name} ← {config.reflection.name}",
                                 params=_config_params(config, task, splits),
                                 tags={f"{TAG}model": config.student.name, f"{TAG}program": "gepa",
                                       f"{TAG}reflection_model": config.reflection.name,
                                       **({f"{TAG}job_id": job_id} if job_id else {})})
        store.log_artifacts(run_id, {"config.json": config.to_dict()})
    else:
        store.client.update_run(run_id, status="RUNNING")
    if on_run_created:
        on_run_created(run_id)

    prev = previous or {}
    meters = (CostMeter(student_lm, resolve_price(config.student), float(prev.get("student_cost_usd", 0.0))),
              CostMeter(reflection_lm, resolve_price(config.reflection), float(prev.get("reflection_cost_usd", 0.0))))
    callback = ProgressCallback(sink, budget, *meters, previous=prev, store=store, run_id=run_id)
    log_dir.mkdir(parents=True, exist_ok=True)
    stop_reason = {"why": ""}

    def stopper(_state: Any = None) -> bool:
        if _stop_file(log_dir).exists():
            stop_reason["why"] = stop_reason["why"] or "cancelled"
            return True
        if should_stop and should_stop():
            stop_reason["why"] = "cancelled"
            return True
        if config.max_cost_usd is not None and callback.total_cost() >= config.max_cost_usd:
            stop_reason["why"] = f"spending cap ${config.max_cost_usd:.4f} reached"
            return True
        return False

    metric = make_metric(task, config.feedback, judge_lm=reflection_lm if config.feedback == "judge" else None)
    program = make_program(task, config.module)
    original_instruction = get_instruction(program)
    budget_kw: dict[str, Any] = {"max_metric_calls": budget}
    gepa = dspy.GEPA(
        metric=metric, reflection_lm=reflection_lm, reflection_minibatch_size=config.reflection_minibatch_size,
        use_merge=config.use_merge, num_threads=config.threads, seed=config.seed, log_dir=str(log_dir),
        track_stats=True, **budget_kw,
        gepa_kwargs={"callbacks": [callback, *(extra_callbacks or [])], "stop_callbacks": [stopper]},
    )
    try:
        with dspy.context(lm=student_lm):
            optimized = gepa.compile(program, trainset=train, valset=val)
    except BaseException as exc:
        callback.emit(force=True, phase="failed", message=str(exc)[:2000])
        store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
        store.end_run(run_id, "FAILED")
        raise

    stopped = bool(stop_reason["why"])
    details = getattr(optimized, "detailed_results", None)
    best_instruction = get_instruction(optimized)
    callback.emit(force=True, phase="stopped" if stopped else "evaluating",
                  message=stop_reason["why"] or "Evaluating original and optimized on the test set")
    files: dict[str, Any] = {
        "optimized_program.json": program_to_dict(optimized, task),
        "original_program.json": program_to_dict(program, task),
        "instructions.json": {"original": original_instruction, "optimized": best_instruction},
        "progress.json": callback.state,
    }
    if details is not None:
        try:
            files["detailed_results.json"] = details.to_dict()
        except Exception as exc:  # noqa: BLE001
            logger.warning("detailed_results not serializable: %s", exc)
    store.log_artifacts(run_id, files)
    state = callback.state
    cost_metrics = {
        "optimization_cost_usd": state["total_cost_usd"], "student_cost_usd": state["student_cost_usd"],
        "reflection_cost_usd": state["reflection_cost_usd"], "metric_calls_used": state["metric_calls_used"],
        "candidates": float(len(details.candidates)) if details is not None else float(state["candidates"]),
        "best_val_score": float(max(details.val_aggregate_scores)) if details is not None else float(state["best_val_score"] or 0),
        "iterations": state["iteration"], "elapsed_s": state["elapsed_s"],
        "student_input_tokens": meters[0].input_tokens, "student_output_tokens": meters[0].output_tokens,
        "reflection_input_tokens": meters[1].input_tokens, "reflection_output_tokens": meters[1].output_tokens,
    }
    if details is not None and getattr(details, "total_metric_calls", None) is not None:
        cost_metrics["total_metric_calls"] = float(details.total_metric_calls)
    store.log_metrics(run_id, cost_metrics)
    result = OptimizeResult(run_id=run_id, status="cancelled" if stopped else "succeeded", stop_reason=stop_reason["why"],
                            best_instruction=best_instruction, original_instruction=original_instruction)
    if stopped:
        store.set_tags(run_id, {f"{TAG}stop_reason": stop_reason["why"]})
        store.end_run(run_id, "KILLED")
        result.progress = callback.state
        return result

    # Paired comparison: both programs on the identical test examples, as child runs.
    eval_kw = dict(task_ref=config.task_ref, sample=config.sample, threads=config.threads, cache=config.cache,
                   lm=student_lm if lm_factory else None, parent_run_id=run_id, job_id=job_id, kind="evaluation")
    orig_id, orig = run_evaluation(store, task, config.student, program, test, program_label="original", **eval_kw)  # type: ignore[arg-type]
    opt_id, opt = run_evaluation(store, task, config.student, optimized, test, program_label="optimized", **eval_kw)  # type: ignore[arg-type]
    result.original_eval_run_id, result.optimized_eval_run_id = orig_id, opt_id
    result.original_accuracy, result.optimized_accuracy = orig.metrics["accuracy"], opt.metrics["accuracy"]
    store.log_metrics(run_id, {"original_test_accuracy": orig.metrics["accuracy"],
                               "optimized_test_accuracy": opt.metrics["accuracy"],
                               "original_cost_per_1k": orig.metrics["cost_per_1k"],
                               "optimized_cost_per_1k": opt.metrics["cost_per_1k"]})
    store.set_tags(run_id, {f"{TAG}original_eval_run_id": orig_id, f"{TAG}optimized_eval_run_id": opt_id,
                            f"{TAG}optimized_fingerprint": fingerprint(optimized)})
    result.prompt_uri = register_prompt(store, task, config.student, best_instruction, result.optimized_accuracy,
                                        run_id, job_id)
    callback.emit(force=True, phase="done", message="Finished")
    store.log_artifacts(run_id, {"progress.json": callback.state})
    store.end_run(run_id, "FINISHED")
    result.progress = callback.state
    return result

