"""MLflow-native traces of every LM call of a run, and the splits a run was measured on as MLflow datasets.

Each LM call of an evaluation (a baseline, or an optimization's test evaluation) and of a GEPA search (the
student on train minibatches and on validation, the reflection model, the LLM judge) becomes one MLflow trace
in the run's experiment, linked to the run by the trace metadata ``mlflow.sourceRun`` (what MLflow's run page
reads for its Traces tab, and what ``search_traces(run_id=...)`` filters on) and tagged ``studio.role``,
``studio.model``, ``studio.run_id`` and ``studio.example`` (a failed call also ``studio.failure_kind``, the kind its
evaluation record names). Its one span holds the messages sent and the answer (every configured key scrubbed),
tokens, cost, latency and the wait for a local server's free slot (``studio.queue_s``, not in the latency).

The hook is a wrapper on the LM (as :func:`core.optimize.guard.guard_lm`): ``lm(...)`` is the one path DSPy's
adapters take, in whatever thread calls it, so no MLflow run has to be "active" in the calling thread, and the
history entry DSPy records for the call gives its exact messages, usage and outputs. Traces are exported by
MLflow's async queue (``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING``, on by default): a call waits about 2 ms for its
span, the store writes happen in MLflow's threads; :func:`flush` waits for them at the end of a run. A tracing
error is logged once per run and never fails a call. ``GEPA_STUDIO_TRACES=off`` turns tracing off.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Literal, Protocol

from core.config.errors import ConfigError
from core.config.secrets import scrub
from core.config.settings import get_secret
from core.lm.breaker import classify_failure
from core.lm.limits.slots import queue_clock
from core.lm.models import ModelSpec, Price, api_key_for, build_lm, resolve_price
from core.tasks import Task
from core.tracking.run_inputs import DATASET_CONTEXTS as DATASET_CONTEXTS  # re-exported: where they were
from core.tracking.run_inputs import log_datasets as log_datasets
from core.tracking.store import TAG, RunStore

logger = logging.getLogger(__name__)

TRACES_ENV = "GEPA_STUDIO_TRACES"
Role = Literal["student_train", "student_val", "reflection", "judge", "evaluation"]
ROLES: tuple[Role, ...] = ("student_train", "student_val", "reflection", "judge", "evaluation")
ROLE_TAG, MODEL_TAG, RUN_TAG, EXAMPLE_TAG = f"{TAG}role", f"{TAG}model", f"{TAG}run_id", f"{TAG}example"
FAILURE_TAG = f"{TAG}failure_kind"  # a failed call's kind, the word its evaluation record uses (FAILURE_KINDS)
FLUSH_TIMEOUT_S = 120.0  # the longest the end of a run waits for its traces to be written
_SCAN_LIMIT = 5000  # above this many example texts, an example is found by its field section only
_ON = {"on": True, "1": True, "true": True, "yes": True, "off": False, "0": False, "false": False, "no": False}
_SECTION = re.compile(r"\[\[ ## \w+ ## \]\]\n(.*?)(?=\n\n(?:\[\[ ## |Respond with)|\Z)", re.S)


def tracing_enabled() -> bool:
    """Is tracing on (``GEPA_STUDIO_TRACES``: ``on``, the default, or ``off``)?"""
    raw = (get_secret(TRACES_ENV) or "on").strip().lower()
    if raw not in _ON:
        raise ConfigError(f"{TRACES_ENV}={raw!r} is neither 'on' nor 'off'.",
                          f"Set {TRACES_ENV}=off to record no MLflow traces (very large runs), or on (the default).")
    return _ON[raw]


class RoleSource(Protocol):
    """Says which role a call of the student or the reflection model counts for right now (GEPA's phase):
    :class:`core.optimize.search.SearchRecorder` is one, so its cost by role and the traces agree."""

    def current_role(self, model: Literal["student", "reflection"]) -> str: ...


class ExampleIndex:
    """Finds the example an LM call is about from its messages: the input text of each split, by position."""

    def __init__(self, splits: Mapping[str, Sequence[str]] | None = None) -> None:
        self._by_split: dict[str, dict[str, int | None]] = {}
        for name, texts in (splits or {}).items():
            index: dict[str, int | None] = {}
            for i, text in enumerate(texts):
                key = str(text).strip()
                index[key] = None if key in index else i  # a text given twice is not one example
            self._by_split[name] = index

    def find(self, messages: Any, prefer: str | None = None) -> str:
        """The example's index in ``prefer``'s split (else in any split) as text; '' when unknown."""
        text = _last_user_text(messages)
        if not text or not self._by_split:
            return ""
        order = [prefer] if prefer in self._by_split else []
        order += [s for s in self._by_split if s != prefer]
        values = [m.strip() for m in _SECTION.findall(text)]
        for split in order:
            index = self._by_split[split]
            hits = [index[v] for v in values if v in index]
            if hits:
                return "" if hits[0] is None else str(hits[0])
        for split in order:  # a text the section pattern cut short (it holds a blank line): the longest one inside
            index = self._by_split[split]
            if len(index) <= _SCAN_LIMIT:
                inside = [k for k in index if k and k in text]
                if inside:
                    found = index[max(inside, key=len)]
                    return "" if found is None else str(found)
        return ""


def _last_user_text(messages: Any) -> str:
    if isinstance(messages, str):
        return messages
    for message in reversed(list(messages or [])):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "\n".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content)
            return str(content or "")
    return ""


def _ensure_tracking_uri(uri: str) -> None:
    """Make MLflow's tracer export to this store. It exports to the process's tracking URI as it was when the
    tracer was set up, so a changed ``MLFLOW_TRACKING_URI`` alone does not move it: setting the URI resets it."""
    import mlflow
    from mlflow.tracing.provider import _get_trace_exporter  # no public way to ask where traces go

    exporter = _get_trace_exporter()
    current = getattr(getattr(exporter, "_client", None), "tracking_uri", None)
    if mlflow.get_tracking_uri() != uri or (current is not None and current != uri):
        mlflow.set_tracking_uri(uri)


class RunTracer:
    """Writes the traces of one MLflow run's LM calls (see the module's docstring)."""

    def __init__(self, store: RunStore, run_id: str, examples: ExampleIndex | None = None) -> None:
        _ensure_tracking_uri(store.settings.tracking_uri)
        self.run_id = run_id
        self.experiment_id = store.get_run(run_id).info.experiment_id
        self.examples = examples or ExampleIndex()
        self._warned = False
        self._lock = threading.Lock()

    def lm(self, lm: Any, spec: ModelSpec, role: Role | Callable[[], str]) -> Any:
        """A shallow copy of ``lm`` (same engine, history and cache) whose calls are traced for this run as
        ``role`` (a callable is asked at each call). An LM traced before is re-bound, never traced twice."""
        traced = copy.copy(lm)
        if not isinstance(lm, _Traced):
            traced.__class__ = _traced_class(type(lm))
        traced._studio_trace = _Binding(self, spec, role)
        return traced

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            warned, self._warned = self._warned, True
        if not warned:
            logger.warning("MLflow tracing of run %s failed (the run goes on without some traces): %s",
                           self.run_id, scrub(str(exc))[:500])


class _Binding:
    """What a traced LM knows: its run, model and role."""

    def __init__(self, tracer: RunTracer, spec: ModelSpec, role: Role | Callable[[], str]) -> None:
        self.tracer, self.spec, self._role = tracer, spec, role
        self.price: Price = resolve_price(spec)
        self.keys = [api_key_for(spec)]  # the spec's own key, beside every configured one

    def role(self) -> str:
        return self._role() if callable(self._role) else self._role

    def clean(self, value: Any) -> Any:
        """JSON-safe ``value`` with every key value scrubbed out."""
        return json.loads(scrub(json.dumps(value, default=str), self.keys))

    def record(self, role: str, call: tuple[tuple[Any, ...], dict[str, Any]], entry: Mapping[str, Any] | None,
               out: Any, exc: BaseException | None, start_ns: int, queued: float = 0.0) -> None:
        end_ns = time.time_ns()
        try:
            self._write(role, call, entry or {}, out, exc, start_ns, end_ns, queue_clock() - queued)
        except Exception as err:  # noqa: BLE001 - tracing never fails a call
            self.tracer.failed(err)

    def _write(self, role: str, call: tuple[tuple[Any, ...], dict[str, Any]], entry: Mapping[str, Any], out: Any,
               exc: BaseException | None, start_ns: int, end_ns: int, queue_s: float = 0.0) -> None:
        import mlflow
        from mlflow.entities import SpanStatus, SpanStatusCode, SpanType
        from mlflow.tracing.constant import SpanAttributeKey, TraceMetadataKey

        args, kwargs = call
        messages = entry.get("messages") or kwargs.get("messages") or kwargs.get("prompt") or (args[0] if args else "")
        usage = dict(entry.get("usage") or {})
        inp, outp = usage.get("prompt_tokens"), usage.get("completion_tokens")
        cached_usage = getattr(entry.get("response"), "usage", None)  # a cache hit: the tokens it once took
        if (inp is None or outp is None) and cached_usage is not None:
            inp, outp = getattr(cached_usage, "input_tokens", None), getattr(cached_usage, "output_tokens", None)
        inp, outp = int(inp or 0), int(outp or 0)
        t = self.tracer
        # A reflection prompt quotes several examples: it is about none of them.
        example = "" if role == "reflection" else t.examples.find(messages, {"student_train": "train"}.get(role, "val"))
        attributes: dict[str, Any] = {
            SpanAttributeKey.MODEL: self.spec.model, SpanAttributeKey.MODEL_PROVIDER: self.spec.provider,
            SpanAttributeKey.CHAT_USAGE: {"input_tokens": inp, "output_tokens": outp, "total_tokens": inp + outp},
            # The wait for a free slot of a local server (core.lm.limits.slots) is not the model's latency.
            f"{TAG}latency_s": round((end_ns - start_ns) / 1e9 - queue_s, 4), f"{TAG}queue_s": round(queue_s, 4),
            f"{TAG}cached": bool(entry) and not usage,
        }
        if self.price.cost(inp, outp) is not None:
            cost_in, cost_out = self.price.cost(inp, 0) or 0.0, self.price.cost(0, outp) or 0.0
            attributes[SpanAttributeKey.LLM_COST] = {"input_cost": cost_in, "output_cost": cost_out,
                                                     "total_cost": cost_in + cost_out}
        tags = {ROLE_TAG: role, MODEL_TAG: self.spec.name, RUN_TAG: t.run_id, EXAMPLE_TAG: example,
                **({FAILURE_TAG: classify_failure(exc)} if exc is not None else {})}
        span = mlflow.start_span_no_context(
            name=f"{role} · {self.spec.name}", span_type=SpanType.CHAT_MODEL,
            inputs=self.clean({"messages": messages}), attributes=attributes, tags=tags,
            metadata={TraceMetadataKey.SOURCE_RUN: t.run_id}, experiment_id=t.experiment_id, start_time_ns=start_ns)
        if exc is None:
            outputs = entry.get("outputs", out)
            span.set_outputs(self.clean({"outputs": outputs}))
            span.end(end_time_ns=end_ns)
        else:
            message = scrub(f"{type(exc).__name__}: {exc}", self.keys)[:2000]
            span.set_attribute(f"{TAG}error", message)
            span.end(status=SpanStatus(SpanStatusCode.ERROR, message), end_time_ns=end_ns)


_CAPTURE: ContextVar[list[Mapping[str, Any]] | None] = ContextVar("studio_trace_capture", default=None)


class _Traced:
    """Mixed in before an LM's own class: every call becomes a trace (see the module's docstring)."""

    _studio_trace: _Binding

    def _studio_skip(self) -> bool:
        guard = getattr(self, "_studio_guard", None)  # a tripped guard fails the call before it is made
        return guard is not None and guard.tripped

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        binding = self._studio_trace
        if self._studio_skip():
            return super().__call__(*args, **kwargs)  # type: ignore[misc]
        role, slot, start, queued = binding.role(), [], time.time_ns(), queue_clock()
        token = _CAPTURE.set(slot)
        try:
            out = super().__call__(*args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            _CAPTURE.reset(token)
            binding.record(role, (args, kwargs), slot[-1] if slot else None, None, exc, start, queued)
            raise
        _CAPTURE.reset(token)
        binding.record(role, (args, kwargs), slot[-1] if slot else None, out, None, start, queued)
        return out

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        binding = self._studio_trace
        if self._studio_skip():
            return await super().acall(*args, **kwargs)  # type: ignore[misc]
        role, slot, start, queued = binding.role(), [], time.time_ns(), queue_clock()
        token = _CAPTURE.set(slot)
        try:
            out = await super().acall(*args, **kwargs)  # type: ignore[misc]
        except Exception as exc:
            _CAPTURE.reset(token)
            binding.record(role, (args, kwargs), slot[-1] if slot else None, None, exc, start, queued)
            raise
        _CAPTURE.reset(token)
        binding.record(role, (args, kwargs), slot[-1] if slot else None, out, None, start, queued)
        return out

    def update_history(self, entry: Mapping[str, Any]) -> None:
        slot = _CAPTURE.get()
        if slot is not None:
            slot.append(entry)  # DSPy records the call here, in the calling thread, before the call returns
        super().update_history(entry)  # type: ignore[misc]


@functools.lru_cache(maxsize=None)
def _traced_class(cls: type) -> type:
    return type(f"Traced{cls.__name__}", (_Traced, cls), {})


# What the runs call ------------------------------------------------------------------------------


def evaluation_lm(store: RunStore, run_id: str, spec: ModelSpec, lm: Any, texts: Sequence[str], *,
                  cache: bool = True) -> Any:
    """The LM an evaluation run calls: ``lm`` (or the one built from ``spec``) with each call traced as role
    "evaluation" of ``run_id``, the example found among ``texts`` (the examples in order); ``lm`` when off."""
    if not tracing_enabled():
        return lm
    try:
        tracer = RunTracer(store, run_id, ExampleIndex({"test": texts}))
        return tracer.lm(lm if lm is not None else build_lm(spec, cache=cache), spec, "evaluation")
    except Exception as exc:  # noqa: BLE001 - a run without traces is still a run
        logger.warning("run %s is not traced: %s", run_id, scrub(str(exc))[:500])
        return lm


def trace_optimization(store: RunStore, run_id: str, task: Task, train: Sequence[Any], val: Sequence[Any] | None,
                       lms: tuple[Any, Any], specs: tuple[ModelSpec, ModelSpec],
                       roles: RoleSource | None = None) -> tuple[Any, Any]:
    """The student and reflection LMs of a GEPA run with their calls traced: the student's role (train minibatch
    or validation) and the reflection model's (reflection or judge) come from ``roles``; the example is found
    among ``train`` / ``val`` (GEPA's ids: positions in them; no ``val``: GEPA validates on ``train``)."""
    if not tracing_enabled():
        return lms
    try:
        field = task.input_field
        texts = {"train": [str(ex[field]) for ex in train]}
        texts["val"] = [str(ex[field]) for ex in val] if val else texts["train"]
        tracer = RunTracer(store, run_id, ExampleIndex(texts))
        student_role = (lambda: roles.current_role("student")) if roles else "student_val"
        reflection_role = (lambda: roles.current_role("reflection")) if roles else "reflection"
        return tracer.lm(lms[0], specs[0], student_role), tracer.lm(lms[1], specs[1], reflection_role)
    except Exception as exc:  # noqa: BLE001 - a run without traces is still a run
        logger.warning("optimization %s is not traced: %s", run_id, scrub(str(exc))[:500])
        return lms


def flush(timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Wait (at most ``timeout_s``) until MLflow has written the traces queued so far: a finished run shows
    them. What is still queued then is written in the background (and at the latest when the process exits)."""
    try:
        if not tracing_enabled():
            return
    except ConfigError:
        return  # the run that reads the setting says what is wrong with it

    def run() -> None:
        try:
            import mlflow

            mlflow.flush_trace_async_logging()
        except Exception as exc:  # noqa: BLE001 - the traces are an extra
            logger.warning("could not flush MLflow traces: %s", scrub(str(exc))[:500])

    worker = threading.Thread(target=run, name="trace-flush", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        logger.warning("MLflow traces still being written after %.0f s; they are written in the background", timeout_s)


# Counts -----------------------------------------------------------------------------------------------


def trace_counts(store: RunStore, run_id: str) -> dict[str, int]:
    """How many MLflow traces the run has, per ``studio.role`` (roles in :data:`ROLES` order; none: empty)."""
    experiment_id = store.get_run(run_id).info.experiment_id
    counts: Counter[str] = Counter()
    token = None
    while True:
        page = store.client.search_traces(locations=[experiment_id], run_id=run_id, include_spans=False,
                                          max_results=500, page_token=token)
        counts.update(t.info.tags.get(ROLE_TAG, "other") for t in page)
        token = page.token
        if not token:
            break
    return {role: counts[role] for role in (*ROLES, *sorted(set(counts) - set(ROLES))) if counts[role]}
