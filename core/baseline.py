"""Evaluations as MLflow runs: one model and program on a split, and baselines of several models side by side."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

import dspy
import pandas as pd

from core.errors import StudioError
from core.evaluate import EvalRecord, EvalResult, evaluate, read_records
from core.models import ModelSpec
from core.program import fingerprint, make_program, program_to_dict, prompt_text, render_prompt, to_examples
from core.store import TAG, RunKind, RunStore
from core.tasks import SampleSpec, Splits, Task, TaskRef, prepare, split_fingerprint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    spec: ModelSpec
    result: EvalResult | None
    error: str | None = None


def spec_params(spec: ModelSpec) -> dict[str, Any]:
    """Params that describe a model spec (names only: never a key value)."""
    from core.models import resolve_price

    price = resolve_price(spec)
    return {
        "model": spec.model, "model_name": spec.name, "provider": spec.provider, "api_base": spec.api_base,
        "temperature": spec.temperature, "max_tokens": spec.max_tokens, "reasoning_effort": spec.reasoning_effort,
        "price_input_per_m": price.input_per_m, "price_output_per_m": price.output_per_m, "price_source": price.source,
    }


def run_evaluation(
    store: RunStore,
    task: Task,
    spec: ModelSpec,
    program: dspy.Module,
    test: pd.DataFrame,
    *,
    kind: RunKind = "baseline",
    program_label: str = "original",
    sample: SampleSpec | None = None,
    task_ref: TaskRef | None = None,
    threads: int = 8,
    cache: bool = True,
    lm: Any = None,
    parent_run_id: str | None = None,
    job_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    on_record: Callable[[int, int, EvalRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[str, EvalResult]:
    """Evaluate and record an MLflow run (params, metrics, records, program, prompt). Returns (run id, result).

    The records are written to ``<data dir>/runs/<run id>/records.jsonl`` as they finish; a failed or
    stopped run is still logged with what it finished (status FAILED / KILLED).
    """
    examples = to_examples(test, task)
    params = {
        **spec_params(spec),
        "task": task.name, "n_test": len(examples), "threads": threads, "cache": cache,
        "program_fingerprint": fingerprint(program), "test_fingerprint": split_fingerprint(test, task),
        **({f"sample_{k}": v for k, v in sample.to_dict().items()} if sample else {}),
        **({"task_source": task_ref.source or task_ref.kind} if task_ref else {}),
    }
    tags = {f"{TAG}model": spec.name, f"{TAG}program": program_label, **(extra_tags or {})}
    if job_id:
        tags[f"{TAG}job_id"] = job_id
    run_name = f"{spec.name} · {program_label}"
    run_id = store.start_run(kind, task.name, run_name=run_name, params=params, tags=tags, parent_run_id=parent_run_id)
    records_path = store.settings.data_dir / "runs" / run_id / "records.jsonl"
    records_path.parent.mkdir(parents=True, exist_ok=True)
    messages = render_prompt(program, examples[0]) if examples else []
    status = "FINISHED"
    result: EvalResult | None = None
    try:
        result = evaluate(program, spec, examples, task, threads=threads, cache=cache, lm=lm,
                          records_path=records_path, on_record=on_record, should_stop=should_stop)
        if not result.metrics.get("complete"):
            status = "KILLED"
        return run_id, result
    except BaseException as exc:
        status = "FAILED"
        store.set_tags(run_id, {f"{TAG}error": str(exc)[:5000]})
        raise
    finally:
        records = result.records if result is not None else read_records(records_path)
        _finish(store, run_id, task, program, records, result, messages, status)


def _finish(store: RunStore, run_id: str, task: Task, program: dspy.Module, records: pd.DataFrame,
            result: EvalResult | None, messages: list[dict[str, Any]], status: str) -> None:
    try:
        files: dict[str, Any] = {
            "records.csv": records,
            "program.json": program_to_dict(program, task),
            "prompt.json": messages,
            "prompt.txt": prompt_text(messages),
        }
        if result is not None:
            store.log_metrics(run_id, result.metrics)
            files["per_label.csv"] = result.per_label
            files["confusion.csv"] = result.confusion
            files["result.json"] = result.to_dict()
        store.log_artifacts(run_id, files)
    finally:
        store.end_run(run_id, status)  # type: ignore[arg-type]


def run_baselines(
    store: RunStore,
    task_ref: TaskRef,
    sample: SampleSpec,
    specs: list[ModelSpec],
    *,
    module: str = "predict",
    threads: int = 8,
    cache: bool = True,
    on_record: Callable[[ModelSpec, int, int, EvalRecord], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    prepared: tuple[Task, Splits] | None = None,
) -> list[EvalOutcome]:
    """Evaluate the unoptimized program with each model on the same test split. A model that fails
    (bad key, unknown model) is reported in its outcome; the others still run."""
    task, splits = prepared or prepare(task_ref, sample, store.settings)
    program = make_program(task, module)  # type: ignore[arg-type]
    outcomes = []
    for spec in specs:
        if should_stop and should_stop():
            break
        cb = (lambda done, total, rec, _s=spec: on_record(_s, done, total, rec)) if on_record else None
        try:
            run_id, result = run_evaluation(store, task, spec, program, splits.test, kind="baseline",
                                            program_label="original", sample=sample, task_ref=task_ref,
                                            threads=threads, cache=cache, on_record=cb, should_stop=should_stop)
            outcomes.append(EvalOutcome(run_id, spec, result))
        except StudioError as exc:
            logger.warning("baseline for %s failed: %s", spec.name, exc)
            outcomes.append(EvalOutcome("", spec, None, str(exc)))
    return outcomes


def outcomes_table(outcomes: list[EvalOutcome]) -> pd.DataFrame:
    """A printable table: model, accuracy (95% CI), macro-F1, cost per 1k, p50 latency, tokens, run id."""
    rows = []
    for o in outcomes:
        m = o.result.metrics if o.result else {}
        rows.append({
            "model": o.spec.name,
            "accuracy": m.get("accuracy"),
            "ci_low": m.get("accuracy_ci_low"),
            "ci_high": m.get("accuracy_ci_high"),
            "macro_f1": m.get("macro_f1"),
            "n": int(m["n"]) if m else 0,
            "cost_per_1k_usd": m.get("cost_per_1k"),
            "p50_latency_s": m.get("p50_latency_s"),
            "tokens": int(m.get("input_tokens", 0) + m.get("output_tokens", 0)) if m else 0,
            "run_id": o.run_id,
            "error": o.error,
        })
    return pd.DataFrame(rows)


def load_run_detail(store: RunStore, run_id: str) -> dict[str, Any]:
    """Everything the dashboard shows about one evaluation run: params, metrics, records, program, prompt."""
    run = store.get_run(run_id)
    names = set(store.list_artifacts(run_id))
    detail: dict[str, Any] = {"run": run, "params": dict(run.data.params), "metrics": dict(run.data.metrics),
                              "tags": dict(run.data.tags)}
    if "records.csv" in names:
        detail["records"] = store.read_csv(run_id, "records.csv")
    if "program.json" in names:
        detail["program"] = store.read_json(run_id, "program.json")
    if "prompt.json" in names:
        detail["prompt"] = json.loads(store.read_text(run_id, "prompt.json"))
    if "per_label.csv" in names:
        detail["per_label"] = store.read_csv(run_id, "per_label.csv")
    return detail
