"""One GEPA run in the calling process: progress, cost cap, cancel, resume; every result lands in MLflow.

``core.jobs`` runs it as a background job (the ``optimize`` job kind); the CLI runs it in the foreground.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import dspy

from core.baseline import run_evaluation, spec_params
from core.metric import make_metric
from core.models import ModelSpec, build_lm, resolve_price
from core.optimize.config import OptimizeConfig
from core.optimize.estimate import Plan, metric_call_budget, plan_optimization
from core.optimize.progress import CostMeter, OptimizeProgress, ProgressCallback, ProgressSink
from core.program import fingerprint, get_instruction, make_program, program_to_dict, to_examples
from core.store import TAG, RunStore
from core.tasks import Splits, Task, split_fingerprint

logger = logging.getLogger(__name__)

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
    progress: OptimizeProgress = field(default_factory=dict)  # type: ignore[assignment]
    prompt_uri: str | None = None


LMFactory = Callable[[ModelSpec], Any]


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
    previous: OptimizeProgress | None = None,
    should_stop: Callable[[], bool] | None = None,
    lm_factory: LMFactory | None = None,
    plan: Plan | None = None,
    on_run_created: Callable[[str], None] | None = None,
    extra_callbacks: list[Any] | None = None,
) -> OptimizeResult:
    """Run GEPA, save the best program, evaluate original and optimized on the same test examples.

    ``log_dir`` is GEPA's run directory: a second call with the same ``log_dir`` (and ``run_id``)
    resumes from the last completed iteration. ``previous`` is the progress of earlier attempts;
    ``should_stop`` is the one cancel channel (checked between GEPA iterations); ``plan`` skips re-planning.
    """
    sink = progress or (lambda p: None)
    sink({"phase": "loading", "message": "Loading the task", "history": []})
    plan = plan or plan_optimization(config, store.settings)
    task, splits = plan.task, plan.splits
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

