"""Evaluations as MLflow runs: one model and program on a split, and baselines of several models side by side.

A run records ``studio.pid``/``studio.host`` (so a killed process reads as interrupted) and keeps what it needs
to go on (``<data dir>/runs/<run id>/evaluation.json`` beside its ``records.jsonl``): :func:`resume_evaluation`
completes a killed, stopped or breaker-stopped run in the same MLflow run, reusing its finished records.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, TypedDict, Unpack

import dspy
import pandas as pd

from core.config.errors import ProviderError, StoreError, StudioError
from core.evaluation.evaluate import (
    EvalOptions,
    EvalRecord,
    EvalResult,
    aggregate,
    evaluate,
    failure_counts,
    read_records,
)
from core.evaluation.scorer import task_labels, task_scorer, task_tags, traced_scorer
from core.lm.breaker import BreakerSettings, BreakerTripped, degraded_reason
from core.lm.limits.slots import THREADS_CAPPED_TAG, cap_threads
from core.lm.models import ModelSpec
from core.program.program import (
    fingerprint,
    make_program,
    module_type,
    program_from_dict,
    program_to_dict,
    prompt_text,
    render_prompt,
    to_examples,
)
from core.program.user_program import program_tags
from core.tasks import SampleSpec, Splits, Task, TaskRef, prepare, split_fingerprint
from core.tracking.procs import process_started
from core.tracking.run_inputs import spec_params
from core.tracking.store import TAG, RunKind, RunStore, runs_frame
from core.tracking.tracing import evaluation_lm, key_field, log_datasets
from core.tracking.tracing import flush as flush_traces

logger = logging.getLogger(__name__)

RESUME_FILE = "evaluation.json"
STATE_TAG = f"{TAG}state"  # "interrupted": killed or stopped before the end (resumable)
# Tags a resumed run sheds before it goes on (the outcome of the attempt that stopped).
ATTEMPT_TAGS = (STATE_TAG, f"{TAG}stopped_by", f"{TAG}error", f"{TAG}degraded", f"{TAG}degraded_reason",
                f"{TAG}stop_reason")
INTERRUPTED_TAGS = {STATE_TAG: "interrupted", f"{TAG}stop_reason": "interrupted (Ctrl-C)"}
# Partial counts a stopped run logs; no accuracy: a run that did not end says nothing about the model.
PARTIAL_METRICS = ("n", "correct", "failed", "failure_rate", "answered", "input_tokens", "output_tokens", "cost_usd",
                   "spent_usd", "lm_calls", "cached", "cached_calls", "retried")


@dataclass(frozen=True)
class EvalOutcome:
    run_id: str
    spec: ModelSpec
    result: EvalResult | None
    error: str | None = None
    stopped_by: str | None = None  # "breaker" when the circuit breaker stopped it
    partial: dict[str, float] | None = None  # counts of the records kept by a run that failed


def process_tags() -> dict[str, str]:
    """Which process runs a run: a RUNNING run whose process is gone reads as interrupted (core.tracking.store)."""
    started = process_started(os.getpid())  # tells a reused pid from ours
    return {f"{TAG}pid": str(os.getpid()), f"{TAG}host": socket.gethostname(),
            **({f"{TAG}pid_started": started} if started else {})}


def run_dir(store: RunStore, run_id: str) -> Path:
    return store.settings.data_dir / "runs" / run_id


@dataclass(frozen=True)
class EvalRun:
    """How an evaluation is recorded as an MLflow run: its ``kind``, program label and ``module`` (tag
    ``studio.module``; default: the kind of the program, "predict" or "cot"), the sample and task source it came
    from, its parent run and job, extra tags; ``resume_run_id`` goes on with that run, reusing its records (see
    :func:`resume_evaluation`); ``on_run_created(run_id)`` hears of the run once it exists."""

    kind: RunKind = "baseline"
    program_label: str = "original"
    module: str | None = None
    sample: SampleSpec | None = None
    task_ref: TaskRef | None = None
    parent_run_id: str | None = None
    job_id: str | None = None
    extra_tags: dict[str, str] | None = None
    resume_run_id: str | None = None
    on_run_created: Callable[[str], None] | None = None


def run_evaluation(store: RunStore, task: Task, spec: ModelSpec, program: dspy.Module, test: pd.DataFrame,
                   run: EvalRun = EvalRun(), options: EvalOptions = EvalOptions()) -> tuple[str, EvalResult]:
    """Evaluate and record an MLflow run (params, metrics, records, program, prompt). Returns (run id, result).

    The records are written to ``<data dir>/runs/<run id>/records.jsonl`` as they finish (``options``' records
    path and resume are set here). A stopped run ends KILLED (tag ``studio.state`` interrupted); one the circuit
    breaker stopped ends FAILED (``studio.stopped_by`` breaker, ``studio.error``, degraded) and raises; both keep
    their records and log their partial counts.
    """
    examples = to_examples(test, task)
    # A local server's slots cap the threads (core.lm.limits.slots); an LM given by the caller has no server to ask.
    threads, capped = cap_threads(options.threads, [spec] if options.lm is None else [])
    if run.resume_run_id:
        run_id = run.resume_run_id
        _reopen(store, run_id)
    else:
        tagged = replace(run, extra_tags={**(run.extra_tags or {}), THREADS_CAPPED_TAG: capped}) if capped else run
        run_id = _start(store, task, spec, program, test, tagged, replace(options, threads=threads))
    if run.on_run_created:
        run.on_run_created(run_id)
    records_path = run_dir(store, run_id) / "records.jsonl"
    records_path.parent.mkdir(parents=True, exist_ok=True)
    messages = render_prompt(program, examples[0]) if examples else []
    status, tags = "FINISHED", {}
    result: EvalResult | None = None
    try:
        key = key_field(task.input_names, examples)
        texts = [str(ex[key]) for ex in examples]
        lm = evaluation_lm(store, run_id, spec, options.lm, texts, cache=options.cache)
        result = evaluate(program, spec, examples, task, replace(options, threads=threads, lm=lm,
                                                                 records_path=records_path,
                                                                 resume=bool(run.resume_run_id),
                                                                 scorer=traced_scorer(store, run_id, task, options,
                                                                                      texts)))
        if not result.metrics.get("complete"):
            status, tags = "KILLED", {STATE_TAG: "interrupted"}
        return run_id, result
    except KeyboardInterrupt:  # as every kind of run: KILLED, interrupted, resumable (--resume RUN_ID)
        status, tags = "KILLED", dict(INTERRUPTED_TAGS)
        raise
    except BaseException as exc:
        status, tags = "FAILED", {f"{TAG}error": str(exc)[:5000]}
        if isinstance(exc, BreakerTripped):
            tags.update({f"{TAG}stopped_by": "breaker", f"{TAG}degraded": "true",
                         f"{TAG}degraded_reason": f"The circuit breaker stopped the run: {exc.message}"})
        raise
    finally:
        flush_traces()  # a finished run shows its traces
        records = result.records if result is not None else read_records(records_path)
        _finish(store, run_id, (task, program), records, result, messages, (status, tags))


def _start(store: RunStore, task: Task, spec: ModelSpec, program: dspy.Module, test: pd.DataFrame, run: EvalRun,
           options: EvalOptions) -> str:
    """Start the evaluation's MLflow run (params, tags, its resume file and dataset); its id."""
    params = {
        **spec_params(spec),
        "task": task.name, "n_test": len(test), "threads": options.threads, "cache": options.cache,
        "program_fingerprint": fingerprint(program), "test_fingerprint": split_fingerprint(test, task),
        **({f"sample_{k}": v for k, v in run.sample.to_dict().items()} if run.sample else {}),
        **({"task_source": run.task_ref.source or run.task_ref.kind} if run.task_ref else {}),
    }
    tags = {f"{TAG}model": spec.name, f"{TAG}program": run.program_label, **task_tags(task),
            f"{TAG}module": "program" if task.program else run.module or module_type(program),
            **{f"{TAG}{k}": v for k, v in program_tags(task, program).items()}, **process_tags(),
            **(run.extra_tags or {}),
            **({f"{TAG}job_id": run.job_id} if run.job_id else {})}
    run_id = store.start_run(run.kind, task.name, run_name=f"{spec.name} · {run.program_label}", params=params,
                             tags=tags, parent_run_id=run.parent_run_id)
    _save_resume_file(store, run_id, task, spec, program, test, kind=run.kind, program_label=run.program_label,
                      threads=options.threads, cache=options.cache,
                      judge=options.judge.to_dict() if options.judge else None)
    log_datasets(store, run_id, {"test": test}, task)
    return run_id


def _finish(store: RunStore, run_id: str, subject: tuple[Task, dspy.Module], records: pd.DataFrame,
            result: EvalResult | None, messages: list[dict[str, Any]], ending: tuple[str, dict[str, str]]) -> None:
    (task, program), (status, tags) = subject, ending
    try:
        files: dict[str, Any] = {
            "records.csv": records,
            "program.json": program_to_dict(program, task),
            "prompt.json": messages,
            "prompt.txt": prompt_text(messages),
        }
        metrics = result.metrics if result is not None else aggregate(records, task_labels(task))[0]
        if result is not None and metrics.get("complete"):
            store.log_metrics(run_id, metrics)
            if task.is_classification:  # a task beyond classification has no label tables
                files["per_label.csv"] = result.per_label
                files["confusion.csv"] = result.confusion
            files["result.json"] = result.to_dict()
        else:  # stopped before the end: its counts so far, marked partial
            store.log_metrics(run_id, {**{k: metrics[k] for k in PARTIAL_METRICS},
                                       **{k: v for k, v in metrics.items() if k.startswith("failed_")},
                                       "complete": 0.0})
        settings = BreakerSettings.from_env()
        n, failed = int(metrics.get("n", 0)), int(metrics.get("failed", 0))
        if f"{TAG}degraded" not in tags and settings.degraded(failed, n):
            tags = {**tags, f"{TAG}degraded": "true",
                    f"{TAG}degraded_reason": degraded_reason(failed, n, failure_counts(records), settings)}
        if tags:
            store.set_tags(run_id, tags)
        store.log_artifacts(run_id, files)
    finally:
        store.end_run(run_id, status)  # type: ignore[arg-type]


def _save_resume_file(store: RunStore, run_id: str, task: Task, spec: ModelSpec, program: dspy.Module,
                      test: pd.DataFrame, **how: Any) -> None:
    """What a resume needs, written once at the start: the exact examples (every column the task reads), program,
    model spec and a rubric judge's spec (no key value)."""
    folder = run_dir(store, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    rows = test[list(task.columns)].astype(str).to_dict("list")
    data = {"spec": spec.to_dict(), "program": program_to_dict(program, task), "test": rows, **how}
    (folder / RESUME_FILE).write_text(json.dumps(data, default=str), encoding="utf-8")


def _reopen(store: RunStore, run_id: str) -> None:
    """Make a stopped run RUNNING again in this process (it must not be running elsewhere)."""
    run = store.get_run(run_id)
    if runs_frame([run]).iloc[0]["status"] == "RUNNING":
        raise StoreError(f"Run {run_id} is still running (process {run.data.tags.get(f'{TAG}pid', '?')} on "
                         f"{run.data.tags.get(f'{TAG}host', '?')}).", "Stop it first, or wait for it to end.")
    for key in ATTEMPT_TAGS:
        if key in run.data.tags:
            store.client.delete_tag(run_id, key)
    store.client.update_run(run_id, status="RUNNING")
    store.set_tags(run_id, process_tags())


def _resume_data(store: RunStore, run_id: str) -> dict[str, Any]:
    path = run_dir(store, run_id) / RESUME_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"Run {run_id} cannot be resumed: {path} is missing or unreadable.",
                         "Only evaluations started by this version of GEPA Studio, in this data dir, can be "
                         "resumed.") from exc


def resume_evaluation(store: RunStore, run_id: str, *, threads: int | None = None, lm: Any = None,
                      on_record: Callable[[int, int, EvalRecord], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> tuple[str, EvalResult]:
    """Complete an interrupted, stopped or failed evaluation run in place: only the examples without a record
    (or whose record is a provider failure) are sent again, even with caching off."""
    data = _resume_data(store, run_id)
    program, task = program_from_dict(data["program"])
    run = store.get_run(run_id)
    return run_evaluation(
        store, task, ModelSpec.from_dict(data["spec"]), program, pd.DataFrame(data["test"]),
        EvalRun(kind=data.get("kind", "baseline"), program_label=data.get("program_label", "original"),
                job_id=run.data.tags.get(f"{TAG}job_id"), resume_run_id=run_id),
        EvalOptions(threads=threads or int(data.get("threads", 8)), cache=bool(data.get("cache", True)), lm=lm,
                    on_record=on_record, should_stop=should_stop,
                    judge=ModelSpec.from_dict(data["judge"]) if data.get("judge") else None))


def close_interrupted(store: RunStore, run_ids: list[str]) -> list[str]:
    """End the RUNNING runs among ``run_ids`` as KILLED, tagged interrupted (their process is gone)."""
    closed = []
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
        except StudioError:
            continue
        if run.info.status == "RUNNING":
            store.set_tags(run_id, {STATE_TAG: "interrupted"})
            store.end_run(run_id, "KILLED")
            closed.append(run_id)
    return closed


class BaselineHooks(TypedDict, total=False):
    """What a caller may add to :func:`run_baselines`: ``on_record(spec, done, total, record)`` per example,
    ``should_stop`` (polled), the task and splits already ``prepared``, runs of an earlier attempt to ``resume`` (model
    name -> run id), ``on_run_created(spec, run_id)`` and the ``judge`` model of a task scored by a rubric."""

    on_record: Callable[[ModelSpec, int, int, EvalRecord], None] | None
    should_stop: Callable[[], bool] | None
    prepared: tuple[Task, Splits] | None
    resume: dict[str, str] | None
    on_run_created: Callable[[ModelSpec, str], None] | None
    judge: ModelSpec | None  # the model of a task scored by a rubric judge


def run_baselines(store: RunStore, task_ref: TaskRef, sample: SampleSpec, specs: list[ModelSpec], *,
                  module: str = "predict", threads: int = 8, cache: bool = True,
                  **hooks: Unpack[BaselineHooks]) -> list[EvalOutcome]:
    """Evaluate the unoptimized program with each model on the same test split. A model that fails (bad key,
    unknown model, a provider the circuit breaker gave up on) is reported in its outcome; the others still run.
    ``resume`` maps model names to runs of an earlier attempt to complete instead of starting new ones."""
    task, splits = hooks.get("prepared") or prepare(task_ref, sample, store.settings)
    program = make_program(task, module)  # type: ignore[arg-type]
    if not task.is_classification:
        task_scorer(task, hooks.get("judge"))  # refuses a judge task without its judge before any run starts
    on_record, should_stop = hooks.get("on_record"), hooks.get("should_stop")
    outcomes = []
    for spec in specs:
        if should_stop and should_stop():
            break
        created: list[str] = []
        run = EvalRun(kind="baseline", program_label="original", module=module, sample=sample, task_ref=task_ref,
                      resume_run_id=(hooks.get("resume") or {}).get(spec.name),
                      on_run_created=functools.partial(_note_run, spec, created, hooks.get("on_run_created")))
        options = EvalOptions(threads=threads, cache=cache, should_stop=should_stop, judge=hooks.get("judge"),
                              on_record=functools.partial(on_record, spec) if on_record else None)
        try:
            run_id, result = run_evaluation(store, task, spec, program, splits.test, run, options)
            outcomes.append(EvalOutcome(run_id, spec, result))
        except StudioError as exc:
            logger.warning("baseline for %s failed: %s", spec.name, exc)
            run_id = created[0] if created else ""
            partial = dict(store.get_run(run_id).data.metrics) if run_id else None
            outcomes.append(EvalOutcome(run_id, spec, None, str(exc),
                                        "breaker" if isinstance(exc, BreakerTripped) else None, partial))
    return outcomes


def _note_run(spec: ModelSpec, created: list[str], then: Callable[[ModelSpec, str], None] | None,
              run_id: str) -> None:
    created.append(run_id)
    if then:
        then(spec, run_id)


def resume_baselines(store: RunStore, run_ids: list[str], *, threads: int | None = None,
                     on_record: Callable[[ModelSpec, int, int, EvalRecord], None] | None = None) -> list[EvalOutcome]:
    """:func:`resume_evaluation` for each run, as :func:`run_baselines` reports them (a run the breaker stops
    again is an outcome with its error; a run that cannot be resumed raises)."""
    outcomes = []
    for run_id in run_ids:
        spec = ModelSpec.from_dict(_resume_data(store, run_id)["spec"])
        cb = (lambda done, total, rec, _s=spec: on_record(_s, done, total, rec)) if on_record else None
        try:
            outcomes.append(EvalOutcome(run_id, spec,
                                        resume_evaluation(store, run_id, threads=threads, on_record=cb)[1]))
        except ProviderError as exc:
            outcomes.append(EvalOutcome(run_id, spec, None, str(exc),
                                        "breaker" if isinstance(exc, BreakerTripped) else None,
                                        dict(store.get_run(run_id).data.metrics)))
    return outcomes


def outcomes_table(outcomes: list[EvalOutcome]) -> pd.DataFrame:
    """A printable table: model, accuracy over all examples (95% CI), failures (count, rate, by kind), degraded,
    macro-F1, cost per 1k, p50 latency, tokens, run id, error. A failed model shows the counts it kept."""
    settings = BreakerSettings.from_env()
    rows = []
    for o in outcomes:
        m = o.result.metrics if o.result else (o.partial or {})
        n, failed = int(m.get("n", 0)), int(m.get("failed", 0))
        by_kind = {k.removeprefix("failed_"): int(v) for k, v in m.items() if k.startswith("failed_") and v}
        rows.append({
            "model": o.spec.name,
            "accuracy": m.get("accuracy") if o.result else None,
            "ci_low": m.get("accuracy_ci_low"),
            "ci_high": m.get("accuracy_ci_high"),
            "score": (m.get("score"), m.get("score_ci_low"), m.get("score_ci_high")) if o.result else None,
            "failed": failed,
            "failure_rate": failed / n if n else None,
            "failed_by_kind": by_kind,
            "degraded": o.stopped_by == "breaker" or settings.degraded(failed, n),
            "macro_f1": m.get("macro_f1") if o.result else None,
            "n": n,
            "complete": bool(m.get("complete", 0)),
            "cost_per_1k_usd": m.get("cost_per_1k"),
            "p50_latency_s": m.get("p50_latency_s"),
            "tokens": int(m.get("input_tokens", 0) + m.get("output_tokens", 0)),
            "run_id": o.run_id,
            "stopped_by": o.stopped_by,
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
