"""Writes the MLflow traces of LM calls in batches, off the calls' path: how a trace reaches the store.

A traced call hands :meth:`TraceWriter.submit` a function that builds its trace; a background thread builds
what was submitted and writes it every :data:`FLUSH_INTERVAL_S` seconds (sooner when :data:`BATCH_SIZE` are
waiting), and :meth:`TraceWriter.flush` writes everything at the end of a run. On a SQL store (SQLite,
PostgreSQL, MySQL) one batch is one transaction of four multi-row INSERTs through MLflow's own SQL models (the
rows MLflow's ``start_trace`` and ``log_spans`` write for a one-span trace, spans in the tracking store); on any
other store (a tracking server) a batch is one ``log_spans`` request for its spans and one ``start_trace`` per
trace, MLflow's own client path. A trace's id is derived from its run, role, model, request, outcome and how
many times that same call came before in this attempt of the run, so a resumed run that repeats a call an earlier
attempt already traced writes no second trace (a batch skips the ids the store holds).

Nothing is lost silently: a batch the store refuses is retried, then written one trace at a time; what still
fails is counted per run (:meth:`TraceWriter.take_dropped`), and the run logs that count. A kill -9 loses the
traces of at most the last flush interval.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0  # a kill -9 loses at most this many seconds of traces
BATCH_SIZE = 500  # a batch this large is written at once, before the interval ends
MAX_PENDING = 200_000  # beyond this many unwritten traces (a store far slower than the model), new ones are dropped
RETRIES = (0.2, 1.0)  # seconds before each retry of a refused batch
DROPPED_METRIC = "traces_dropped"  # the run metric (and, with the studio prefix, tag) that counts unwritten traces
_PREVIEW = 1000  # MLflow's preview columns (request_preview, response_preview) hold this many characters


@dataclass
class Trace:
    """One trace of one LM call, as the writer stores it: one root span of type CHAT_MODEL."""

    trace_id: str
    span_id: str  # 16 hex digits
    experiment_id: str
    run_id: str
    name: str
    start_ns: int
    end_ns: int
    ok: bool
    inputs: Any
    outputs: Any  # None for a failed call
    attributes: dict[str, Any]
    tags: dict[str, str]
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)

    def span_dict(self) -> dict[str, Any]:
        """The span as MLflow stores it (``Span.to_dict``'s form: ids in base64, attribute values as JSON)."""
        from mlflow.tracing.constant import SpanAttributeKey

        attributes = {SpanAttributeKey.EXPERIMENT_ID: self.experiment_id, SpanAttributeKey.REQUEST_ID: self.trace_id,
                      SpanAttributeKey.SPAN_TYPE: "CHAT_MODEL", SpanAttributeKey.INPUTS: self.inputs, **self.attributes}
        if self.ok:
            attributes[SpanAttributeKey.OUTPUTS] = self.outputs
        return {
            "trace_id": base64.b64encode(bytes.fromhex(self.trace_id[3:])).decode(),
            "span_id": base64.b64encode(bytes.fromhex(self.span_id)).decode(), "parent_span_id": None,
            "name": self.name, "start_time_unix_nano": self.start_ns, "end_time_unix_nano": self.end_ns, "events": [],
            "status": {"code": "STATUS_CODE_OK" if self.ok else "STATUS_CODE_ERROR", "message": self.error},
            "attributes": {k: json.dumps(v, default=str) for k, v in attributes.items()}, "links": [],
        }

    def metadata(self) -> dict[str, str]:
        from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY, TraceMetadataKey

        return {TraceMetadataKey.SOURCE_RUN: self.run_id, TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION),
                TraceMetadataKey.INPUTS: _cut(json.dumps(self.inputs, default=str)),
                TraceMetadataKey.OUTPUTS: _cut(json.dumps(self.outputs, default=str)),
                **({TraceMetadataKey.TOKEN_USAGE: json.dumps(self.usage)} if self.usage else {}),
                **({TraceMetadataKey.COST: json.dumps(self.cost)} if self.cost else {})}

    def info(self) -> Any:
        """MLflow's ``TraceInfo`` of this trace (the tracking-server path)."""
        from mlflow.entities import TraceInfo, TraceLocation, TraceState
        from mlflow.tracing.constant import TraceTagKey

        return TraceInfo(trace_id=self.trace_id, trace_location=TraceLocation.from_experiment_id(self.experiment_id),
                         request_time=self.start_ns // 1_000_000, state=TraceState.OK if self.ok else TraceState.ERROR,
                         execution_duration=(self.end_ns - self.start_ns) // 1_000_000,
                         request_preview=self.previews()[0], response_preview=self.previews()[1],
                         trace_metadata=self.metadata(), tags={**self.tags, TraceTagKey.TRACE_NAME: self.name})

    def previews(self) -> tuple[str | None, str | None]:
        from mlflow.tracing.utils.truncation import _get_truncated_preview  # MLflow's own rule (last user message)

        return (_get_truncated_preview(self.inputs, role="user"),
                _get_truncated_preview(self.outputs, role="assistant") if self.ok else None)


def _cut(text: str, limit: int = _PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def trace_ids(key: str) -> tuple[str, str]:
    """(trace id ``tr-<32 hex>``, span id ``<16 hex>``) derived from ``key``: the same call, the same ids."""
    digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=24).hexdigest()
    return f"tr-{digest[:32]}", digest[32:]


class TraceWriter:
    """The queue and background writer of one tracking store (one per tracking URI: :func:`writer_for`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Callable[[], Trace | None]]] = []
        self._submitted = self._done = 0
        self._dropped: Counter[str] = Counter()
        self._reasons: dict[str, str] = {}
        self._write_lock = threading.Lock()
        self._warned: set[str] = set()
        self._sink = _sink_for(client)
        self._thread = threading.Thread(target=self._loop, name="studio-trace-writer", daemon=True)
        self._thread.start()

    def submit(self, run_id: str, build: Callable[[], Trace | None]) -> None:
        """Queue one trace; ``build`` runs in the writer thread. Never blocks the caller beyond a lock."""
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._drop(run_id, 1, f"more than {MAX_PENDING} traces waiting to be written")
                return
            self._pending.append((run_id, build))
            self._submitted += 1
            if len(self._pending) >= BATCH_SIZE:
                self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Write everything submitted so far; False when ``timeout_s`` passed first (the rest is written later)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._submitted
            self._cond.notify_all()
            while self._done < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
        return True

    def take_dropped(self) -> dict[str, tuple[int, str]]:
        """{run id: (traces not written since the last call, why)}, then forgets them."""
        with self._cond:
            out = {run: (n, self._reasons.get(run, "")) for run, n in self._dropped.items() if n}
            self._dropped.clear()
            return out

    def _drop(self, run_id: str, n: int, reason: str) -> None:  # under self._cond
        self._dropped[run_id] += n
        self._reasons[run_id] = reason

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(FLUSH_INTERVAL_S)
                batch, self._pending = self._pending, []
            for start in range(0, len(batch), BATCH_SIZE):
                chunk = batch[start:start + BATCH_SIZE]
                try:
                    self._write(chunk)
                except Exception:  # a bug here must not stop the writer (a flush would wait for it)
                    logger.exception("the trace writer failed on a batch of %d traces", len(chunk))
                    with self._cond:
                        for run_id, _ in chunk:
                            self._drop(run_id, 1, "the trace writer failed")
                        self._done += len(chunk)
                        self._cond.notify_all()

    def _write(self, batch: list[tuple[str, Callable[[], Trace | None]]]) -> None:
        traces: list[Trace] = []
        failed: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        for run_id, build in batch:
            try:
                trace = build()
            except Exception as exc:  # noqa: BLE001 - one bad call never stops the others
                failed[run_id] += 1
                reasons[run_id] = f"building a trace failed: {type(exc).__name__}: {exc}"[:300]
                continue
            if trace is not None:
                traces.append(trace)
        try:
            with self._write_lock:
                lost = self._sink.write(traces)
        except Exception as exc:  # noqa: BLE001 - the sink counts what it could not write; this is a bug guard
            lost = {t.run_id: (1, str(exc)) for t in traces}
        for run_id, (n, why) in lost.items():
            failed[run_id] += n
            reasons[run_id] = why
        with self._cond:
            for run_id, n in failed.items():
                self._drop(run_id, n, reasons.get(run_id, ""))
            self._done += len(batch)
            self._cond.notify_all()
        for run_id, n in failed.items():  # once per run; the run's metric counts them all
            log = logger.debug if run_id in self._warned else logger.warning
            self._warned.add(run_id)
            log("could not write %d MLflow traces of run %s: %s", n, run_id, reasons.get(run_id, "")[:300])


class _Sink:
    """Writes a batch of traces; returns {run id: (traces it could not write, why)}."""

    def write_batch(self, traces: list[Trace]) -> None:
        raise NotImplementedError

    def write(self, traces: list[Trace]) -> dict[str, tuple[int, str]]:
        if not traces:
            return {}
        error: Exception | None = None
        for wait in (0.0, *RETRIES):
            time.sleep(wait)
            try:
                self.write_batch(traces)
                return {}
            except Exception as exc:  # noqa: BLE001 - retried, then counted
                error = exc
        lost: dict[str, tuple[int, str]] = {}
        for trace in traces:  # one at a time: one bad trace must not take the batch with it
            try:
                self.write_batch([trace])
            except Exception as exc:  # noqa: BLE001 - counted and reported by the run
                n = lost.get(trace.run_id, (0, ""))[0]
                lost[trace.run_id] = (n + 1, f"{type(exc).__name__}: {exc}"[:300])
        if lost:
            logger.debug("trace batch refused: %s", error)
        return lost


class _SqlSink(_Sink):
    """One transaction per batch through MLflow's SQL models (the rows ``start_trace`` + ``log_spans`` write)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._artifacts: dict[str, str] = {}

    def _artifact_root(self, experiment_id: str) -> str:
        if experiment_id not in self._artifacts:
            self._artifacts[experiment_id] = self.store.get_experiment(experiment_id).artifact_location
        return self._artifacts[experiment_id]

    def write_batch(self, traces: list[Trace]) -> None:
        from mlflow.store.tracking.dbmodels.models import SqlSpan, SqlTraceInfo, SqlTraceMetadata, SqlTraceTag
        from mlflow.store.tracking.utils.sql_trace_rollups import rollups_enabled
        from sqlalchemy import insert, select

        unique = list({t.trace_id: t for t in traces}.values())
        with self.store.ManagedSessionMaker(read_only=False) as session:
            ids = [t.trace_id for t in unique]
            there = set(session.scalars(select(SqlTraceInfo.request_id).where(SqlTraceInfo.request_id.in_(ids))))
            new = [t for t in unique if t.trace_id not in there]  # a resumed run's repeated call: written once
            if not new:
                return
            rows = [self._rows(t) for t in new]
            for model, i in ((SqlTraceInfo, 0), (SqlTraceTag, 1), (SqlTraceMetadata, 2), (SqlSpan, 3)):
                values = [r for row in rows for r in (row[i] if isinstance(row[i], list) else [row[i]])]
                if values:
                    session.execute(insert(model), values)
            if rollups_enabled():
                from mlflow.store.tracking.utils.sql_trace_rollups import (
                    RollupFamily,
                    enqueue_rollup_rebuild_partitions,
                )

                enqueue_rollup_rebuild_partitions(session, [
                    (family, int(t.experiment_id), [t.start_ns // 1_000_000]) for t in new
                    for family in (RollupFamily.TRACE_METRIC, RollupFamily.ASSESSMENT, RollupFamily.SPAN_COST)])

    def _rows(self, t: Trace) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        from mlflow.store.tracking.utils.trace_analytics import analytics_columns_from_metadata
        from mlflow.tracing.constant import SpansLocation, TraceMetadataKey, TraceTagKey
        from mlflow.utils.mlflow_tags import MLFLOW_ARTIFACT_LOCATION
        from mlflow.utils.uri import append_to_uri_path

        metadata = t.metadata()
        analytics = analytics_columns_from_metadata(metadata)
        for key in (TraceMetadataKey.TOKEN_USAGE, TraceMetadataKey.COST):  # promoted to columns, as MLflow does
            metadata.pop(key, None)
        metadata[TraceMetadataKey.TRACE_INFO_FINALIZED] = "true"
        request, response = t.previews()
        info = {"request_id": t.trace_id, "experiment_id": int(t.experiment_id),
                "timestamp_ms": t.start_ns // 1_000_000, "execution_time_ms": (t.end_ns - t.start_ns) // 1_000_000,
                "status": "OK" if t.ok else "ERROR", "request_preview": request, "response_preview": response,
                "trace_name": t.name, "db_payload_generation": 1, **analytics}
        artifacts = append_to_uri_path(self._artifact_root(t.experiment_id), "traces", t.trace_id, "artifacts")
        tags = {**t.tags, MLFLOW_ARTIFACT_LOCATION: artifacts,
                TraceTagKey.SPANS_LOCATION: SpansLocation.TRACKING_STORE.value}
        content = t.span_dict()
        span = {"trace_id": t.trace_id, "experiment_id": int(t.experiment_id), "span_id": t.span_id,
                "parent_span_id": None, "name": t.name, "type": "CHAT_MODEL", "status": "OK" if t.ok else "ERROR",
                "start_time_unix_nano": t.start_ns, "end_time_unix_nano": t.end_ns,
                "content": json.dumps(content, ensure_ascii=False),
                "input_cost": t.cost.get("input_cost"), "output_cost": t.cost.get("output_cost"),
                "total_cost": t.cost.get("total_cost"), "model_name": t.attributes.get("mlflow.llm.model"),
                "model_provider": t.attributes.get("mlflow.llm.provider")}
        return (info, [{"request_id": t.trace_id, "key": k, "value": v} for k, v in tags.items()],
                [{"request_id": t.trace_id, "key": k, "value": v} for k, v in sorted(metadata.items())], span)


class _ClientSink(_Sink):
    """Any other store (a tracking server): MLflow's own export path, batched: one ``log_spans`` request per
    experiment and batch, then one ``start_trace`` per trace (MLflow has no call that creates many)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracing.client import TracingClient

        self.client = TracingClient(tracking_uri)
        self._log_spans = True

    def write_batch(self, traces: list[Trace]) -> None:
        from mlflow.entities import Span, TraceData

        spans = {t.trace_id: Span.from_dict(t.span_dict()) for t in traces}
        by_experiment: defaultdict[str, list[Any]] = defaultdict(list)
        for t in traces:
            by_experiment[t.experiment_id].append(spans[t.trace_id])
        for experiment_id, batch in by_experiment.items():
            if self._log_spans:
                try:
                    self.client.log_spans(experiment_id, batch)
                except NotImplementedError:
                    self._log_spans = False  # this store keeps spans in each trace's artifact (below)
        for t in traces:
            info = self.client.start_trace(t.info())
            if info.tags.get("mlflow.trace.spansLocation") != "TRACKING_STORE":
                self.client._upload_trace_data(info, TraceData(spans=[spans[t.trace_id]]))  # as MLflow's exporter


def _sink_for(client: Any) -> _Sink:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return _SqlSink(store) if isinstance(store, SqlAlchemyStore) else _ClientSink(client.tracking_uri)


_writers: dict[str, TraceWriter] = {}
_writers_lock = threading.Lock()


def writer_for(tracking_uri: str, client_factory: Callable[[], Any]) -> TraceWriter:
    """The process's one writer for ``tracking_uri`` (made with the client ``client_factory`` returns)."""
    with _writers_lock:
        if tracking_uri not in _writers:
            _writers[tracking_uri] = TraceWriter(client_factory())
        return _writers[tracking_uri]


def writers() -> list[TraceWriter]:
    with _writers_lock:
        return list(_writers.values())

def flush_all(timeout_s: float) -> dict[str, int]:
    """Flush every writer of this process (at most ``timeout_s`` in all), then log on each run whose traces could
    not all be written how many (:func:`report_dropped`). Returns {run id: traces dropped since the last flush}."""
    deadline = time.monotonic() + timeout_s
    dropped: dict[str, int] = {}
    for writer in writers():
        if not writer.flush(max(0.0, deadline - time.monotonic())):
            logger.warning("MLflow traces still being written after %.0f s; they are written in the background",
                           timeout_s)
        for run_id, (n, why) in writer.take_dropped().items():
            report_dropped(writer.client, run_id, n, why)
            dropped[run_id] = n
    return dropped


def report_dropped(client: Any, run_id: str, n: int, why: str) -> None:
    """Add ``n`` to the run's metric ``traces_dropped`` and say so in its tag ``studio.traces_dropped``."""
    from core.tracking.store import TAG

    try:
        total = int(client.get_run(run_id).data.metrics.get(DROPPED_METRIC, 0)) + n
        client.log_metric(run_id, DROPPED_METRIC, total)
        client.set_tag(run_id, f"{TAG}{DROPPED_METRIC}", f"could not write {total} traces of this run to MLflow"
                       + (f" (last error: {why})" if why else ""))
    except Exception as exc:  # noqa: BLE001 - the store refuses every write: the log is all that is left
        logger.warning("could not write %d MLflow traces of run %s, nor record that on the run: %s", n, run_id, exc)


atexit.register(lambda: [w.flush(30.0) for w in writers()])  # what a run did not flush is written before exit
