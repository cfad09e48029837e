"""MLflow-native traces of every LM call of a run, and the splits a run was measured on as MLflow datasets.

Each LM call of an evaluation (a baseline, or an optimization's test evaluation) and of a GEPA search (the
student on train minibatches and on validation, the reflection model, the LLM judge) becomes one MLflow trace
in the run's experiment, linked to the run by the trace metadata ``mlflow.sourceRun`` (what MLflow's run page
reads for its Traces tab, and what ``search_traces(run_id=...)`` filters on) and tagged ``studio.role``,
``studio.model``, ``studio.run_id`` and ``studio.example`` (a failed call also ``studio.failure_kind``, the kind its
evaluation record names). Its one span holds the messages sent and the answer (every configured key scrubbed),
tokens, cost, latency and the wait for a local server's free slot (``studio.queue_s``, not in the latency).

The hook is the ``trace`` step of an LM's calls (:mod:`core.lm.call`; :class:`TraceStep`): ``lm(...)`` is the one path
DSPy's adapters take, in whatever thread calls it, so no MLflow run has to be "active" in the calling thread, and the
history entry DSPy records for the call gives its exact messages, usage and outputs. The step runs after the call
guard and the rate limit (a tripped guard leaves no trace; a rate-limit wait is not in the span) and hands each ended
call to the writer through one method, :meth:`_Binding.record`: it queues the call and returns; the trace is
built and written in batches by :mod:`core.tracking.trace_writer`'s thread, and :func:`flush` writes the rest at the
end of a run (a run whose traces could not all be written says how many: metric ``traces_dropped``). A tracing
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

from core.config.errors import ConfigError
from core.config.secrets import as_secrets, scrub, scrub_with
from core.config.settings import get_secret
from core.lm.breaker import classify_failure
from core.lm.call import CURRENT_PREDICTOR, Call, Step, with_step
from core.lm.models import ModelSpec, Price, api_key_for, build_lm, resolve_price
from core.tasks import Task
from core.tracking.run_inputs import DATASET_CONTEXTS as DATASET_CONTEXTS  # re-exported: where they were
from core.tracking.run_inputs import log_datasets as log_datasets
from core.tracking.store import TAG, RunStore
from core.tracking.trace_store import Trace, trace_ids
from core.tracking.trace_writer import flush_all, writer_for

logger = logging.getLogger(__name__)

TRACES_ENV = "GEPA_STUDIO_TRACES"
Role = Literal["student_train", "student_val", "reflection", "judge", "evaluation"]
ROLES: tuple[Role, ...] = ("student_train", "student_val", "reflection", "judge", "evaluation")
ROLE_TAG, MODEL_TAG, RUN_TAG, EXAMPLE_TAG = f"{TAG}role", f"{TAG}model", f"{TAG}run_id", f"{TAG}example"
TRACING_TAG = f"{TAG}tracing"  # on an optimization run: "on" or "off", as its calls were traced or not
PREDICTOR_TAG = f"{TAG}predictor"  # the predictor of your own program that made the call (core.lm.call)
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


def key_field(names: Sequence[str], examples: Sequence[Any]) -> str:
    """The input field that tells examples apart best (most distinct values): the one a call's example is found
    by (a QA task's questions, not its shared contexts)."""
    if len(names) == 1:
        return names[0]
    return max(names, key=lambda n: len({str(ex[n]) for ex in examples}))


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


class RunTracer:
    """Writes the traces of one MLflow run's LM calls (see the module's docstring)."""

    def __init__(self, store: RunStore, run_id: str, examples: ExampleIndex | None = None) -> None:
        self.run_id = run_id
        self.writer = writer_for(store.settings.tracking_uri, lambda: store.client)
        self.experiment_id = store.get_run(run_id).info.experiment_id
        self.examples = examples or ExampleIndex()
        self._warned = False
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()  # how often each call came before in this attempt of the run

    def occurrence(self, key: str) -> int:
        """How many times the call ``key`` came before in this attempt (a resume starts again at 0)."""
        with self._lock:
            n = self._seen[key]
            self._seen[key] = n + 1
        return n

    def lm(self, lm: Any, spec: ModelSpec, role: Role | Callable[[], str]) -> Any:
        """A shallow copy of ``lm`` (same engine, history and cache) whose calls are traced for this run as
        ``role`` (a callable is asked at each call). An LM traced before is re-bound, never traced twice."""
        return with_step(copy.copy(lm), TraceStep(_Binding(self, spec, role)))

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
        self._keys = as_secrets([api_key_for(spec)])  # the spec's own key, beside every configured one

    def role(self) -> str:
        return self._role() if callable(self._role) else self._role

    def clean(self, value: Any, secrets: frozenset[str]) -> str:
        """``value`` as JSON text with every key value (``secrets``, and the model's own key) scrubbed out."""
        return scrub_with(json.dumps(value, default=str), secrets | self._keys)

    def record(self, role: str, call: Call, start_ns: int) -> None:
        """Write the trace of one ended ``call`` (what it was asked, DSPy's history entry, its answer or error, its
        wait for a server slot) as ``role``, its span starting at ``start_ns``: the one thing :class:`TraceStep`
        hands over."""
        end_ns = time.time_ns()
        try:  # the call's path ends here: the trace is built and written in the writer's thread
            self.tracer.writer.submit(self.tracer.run_id, functools.partial(self._build, role, call, start_ns, end_ns))
        except Exception as err:  # noqa: BLE001 - tracing never fails a call
            self.tracer.failed(err)

    def _build(self, role: str, call: Call, start_ns: int, end_ns: int, secrets: frozenset[str]) -> Trace:
        """The trace of one ended call (in the writer's thread): its messages and answer scrubbed of ``secrets`` (the
        configured secret values, looked up once a batch), tokens, cost."""
        from mlflow.tracing.constant import SpanAttributeKey

        args, kwargs, entry = call.args, call.kwargs, call.entry or {}
        out, exc, queue_s = call.out, call.error, call.queue_s
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
                **({FAILURE_TAG: classify_failure(exc)} if exc is not None else {}),
                **({PREDICTOR_TAG: call.notes[PREDICTOR_TAG]} if PREDICTOR_TAG in call.notes else {})}
        inputs_json = self.clean({"messages": messages}, secrets)
        inputs = json.loads(inputs_json)
        error = "" if exc is None else scrub_with(f"{type(exc).__name__}: {exc}", secrets | self._keys)[:2000]
        if error:
            attributes[f"{TAG}error"] = error
        # The same call (run, role, model, request, outcome) the n-th time in this process: the same trace id, so a
        # resumed run that repeats a call an earlier attempt traced does not trace it twice. The key encodes the
        # decoded request with sorted keys, as earlier versions did, so a run they started resumes without twins.
        key = json.dumps([t.run_id, role, self.spec.name, exc is None, inputs], sort_keys=True, default=str)
        trace_id, span_id = trace_ids(f"{key}#{t.occurrence(key)}")
        return Trace(trace_id=trace_id, span_id=span_id, experiment_id=t.experiment_id, run_id=t.run_id,
                     name=f"{role} · {self.spec.name}", start_ns=start_ns, end_ns=end_ns, ok=exc is None,
                     inputs_json=inputs_json, outputs_json=(
                         self.clean({"outputs": entry.get("outputs", out)}, secrets) if exc is None else "null"),
                     attributes=attributes, tags=tags, error=error, usage=attributes[SpanAttributeKey.CHAT_USAGE],
                     cost=attributes.get(SpanAttributeKey.LLM_COST, {}))


class TraceStep(Step):
    """A call's ``trace`` step (:mod:`core.lm.call`: after the guard and the rate limit, before a server's slot gate):
    notes the role and the time as the call starts; once it ended, hands it to the writer (:meth:`_Binding.record`)."""

    name = "trace"

    def __init__(self, binding: _Binding) -> None:
        self.binding = binding

    def start(self, call: Call) -> None:
        call.notes[self.name] = (self.binding.role(), time.time_ns())
        if predictor := CURRENT_PREDICTOR.get():
            call.notes[PREDICTOR_TAG] = predictor

    def end(self, call: Call) -> None:
        if call.ended:
            role, start_ns = call.notes[self.name]
            self.binding.record(role, call, start_ns)


# What the runs call ------------------------------------------------------------------------------


def evaluation_lm(store: RunStore, run_id: str, spec: ModelSpec, lm: Any, texts: Sequence[str], *,
                  cache: bool = True, role: Role = "evaluation") -> Any:
    """The LM an evaluation run calls: ``lm`` (or the one built from ``spec``) with each call traced as ``role``
    ("evaluation"; a rubric judge's calls "judge") of ``run_id``, the example found among ``texts`` (the examples in
    order); ``lm`` when off."""
    if not tracing_enabled():
        return lm
    try:
        tracer = RunTracer(store, run_id, ExampleIndex({"test": texts}))
        return tracer.lm(lm if lm is not None else build_lm(spec, cache=cache), spec, role)
    except Exception as exc:  # noqa: BLE001 - a run without traces is still a run
        logger.warning("run %s is not traced: %s", run_id, scrub(str(exc))[:500])
        return lm


def trace_optimization(store: RunStore, run_id: str, task: Task, examples: tuple[Sequence[Any], Sequence[Any] | None],
                       lms: tuple[Any, Any], specs: tuple[ModelSpec, ModelSpec],
                       roles: RoleSource | None = None) -> tuple[Any, Any]:
    """The student and reflection LMs of a GEPA run with their calls traced: the student's role (train minibatch
    or validation) and the reflection model's (reflection or judge) come from ``roles``; the example is found
    among ``examples``, the run's train and val (GEPA's ids: positions in them; no val: GEPA validates on train)."""
    on = tracing_enabled()
    try:  # the run's own record of whether it was traced (the Optimization page reads it, not today's setting)
        store.set_tags(run_id, {TRACING_TAG: "on" if on else "off"})
    except Exception as exc:  # noqa: BLE001 - a run without the tag is still a run
        logger.warning("could not tag optimization %s with its tracing: %s", run_id, scrub(str(exc))[:500])
    if not on:
        return lms
    try:
        (train, val), field = examples, key_field(task.input_names, examples[0])
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
    """Write the traces submitted so far (waiting at most ``timeout_s``): a finished run shows them. A run some of
    whose traces could not be written gets metric ``traces_dropped`` and tag ``studio.traces_dropped`` (the count and
    why). What is still queued after ``timeout_s`` is written in the background (at the latest at exit)."""
    try:
        flush_all(timeout_s)
    except Exception as exc:  # noqa: BLE001 - the traces are an extra
        logger.warning("could not flush MLflow traces: %s", scrub(str(exc))[:500])


# Counts -----------------------------------------------------------------------------------------------


def _run_traces(store: RunStore, run_id: str) -> Iterator[Any]:
    """Every MLflow trace of the run (their infos: no spans), page by page."""
    experiment_id = store.get_run(run_id).info.experiment_id
    token = None
    while True:
        page = store.client.search_traces(locations=[experiment_id], run_id=run_id, include_spans=False,
                                          max_results=500, page_token=token)
        yield from page
        token = page.token
        if not token:
            break


def trace_counts(store: RunStore, run_id: str) -> dict[str, int]:
    """How many MLflow traces the run has, per ``studio.role`` (roles in :data:`ROLES` order; none: empty)."""
    counts: Counter[str] = Counter(t.info.tags.get(ROLE_TAG, "other") for t in _run_traces(store, run_id))
    return {role: counts[role] for role in (*ROLES, *sorted(set(counts) - set(ROLES))) if counts[role]}


def predictor_calls(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """Your own program's calls split by the predictor that made them (``studio.predictor``) and role: calls, tokens
    and cost from each trace, in the order the predictors first called; [] for a run without such traces."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for t in _run_traces(store, run_id):
        predictor = t.info.tags.get(PREDICTOR_TAG)
        if not predictor:
            continue
        role = t.info.tags.get(ROLE_TAG, "other")
        row = rows.setdefault((predictor, role), {"predictor": predictor, "role": role, "calls": 0,
                                                  "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        usage, cost = t.info.token_usage or {}, t.info.cost or {}
        row["calls"] += 1
        row["input_tokens"] += int(usage.get("input_tokens") or 0)
        row["output_tokens"] += int(usage.get("output_tokens") or 0)
        row["cost_usd"] += float(cost.get("total_cost") or 0.0)
    return list(rows.values())
