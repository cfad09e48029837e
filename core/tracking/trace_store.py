"""A trace of one LM call as the store keeps it, and how a batch of them reaches the store (the trace writer,
:mod:`core.tracking.trace_writer`, queues them and calls :func:`sink_for`'s ``write``).

On a SQL store (SQLite, PostgreSQL, MySQL) one batch is one transaction of four multi-row INSERTs into MLflow's own
SQL models' tables (the rows MLflow's ``start_trace`` and ``log_spans`` write for a one-span trace, spans in the
tracking store); on any other store (a tracking server) a batch is one ``log_spans`` request for its spans and one
``start_trace`` per trace, MLflow's own client path. A batch the store refuses is retried, then written one trace
at a time; what still fails is returned, counted per run. A trace's id is derived from its call (:func:`trace_ids`),
and a batch skips the ids the store already holds, so a resumed run that repeats a traced call writes it once.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

RETRIES = (0.2, 1.0)  # seconds before each retry of a refused batch
_ID = "tr-00000000000000000000000000000000"  # a trace id's shape, replaced by each trace's own
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
    inputs_json: str  # the span's inputs as JSON text (scrubbed): encoded once, stored as it is
    outputs_json: str  # its outputs ("null" for a failed call)
    attributes: dict[str, Any]
    tags: dict[str, str]
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, float] = field(default_factory=dict)

    @functools.cached_property
    def inputs(self) -> Any:
        return json.loads(self.inputs_json)

    @functools.cached_property
    def outputs(self) -> Any:
        return json.loads(self.outputs_json)

    def span_dict(self) -> dict[str, Any]:
        """The span as MLflow stores it (``Span.to_dict``'s form: ids in base64, attribute values as JSON)."""
        from mlflow.tracing.constant import SpanAttributeKey

        attributes = {k: _json(v) for k, v in {
            SpanAttributeKey.EXPERIMENT_ID: self.experiment_id, SpanAttributeKey.REQUEST_ID: self.trace_id,
            SpanAttributeKey.SPAN_TYPE: "CHAT_MODEL", **self.attributes}.items()}
        attributes[SpanAttributeKey.INPUTS] = self.inputs_json  # already JSON: not encoded again
        if self.ok:
            attributes[SpanAttributeKey.OUTPUTS] = self.outputs_json
        return {
            "trace_id": base64.b64encode(bytes.fromhex(self.trace_id[3:])).decode(),
            "span_id": base64.b64encode(bytes.fromhex(self.span_id)).decode(), "parent_span_id": None,
            "name": self.name, "start_time_unix_nano": self.start_ns, "end_time_unix_nano": self.end_ns, "events": [],
            "status": {"code": "STATUS_CODE_OK" if self.ok else "STATUS_CODE_ERROR", "message": self.error},
            "attributes": attributes, "links": [],
        }

    def metadata(self) -> dict[str, str]:
        from mlflow.tracing.constant import TRACE_SCHEMA_VERSION, TRACE_SCHEMA_VERSION_KEY, TraceMetadataKey

        return {TraceMetadataKey.SOURCE_RUN: self.run_id, TRACE_SCHEMA_VERSION_KEY: str(TRACE_SCHEMA_VERSION),
                TraceMetadataKey.INPUTS: _cut(self.inputs_json), TraceMetadataKey.OUTPUTS: _cut(self.outputs_json),
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


def _json(value: Any) -> str:
    """``value`` as JSON: the encoder json.dumps keeps ready (what a span's plain attributes need), else one made to
    write what JSON cannot hold as text."""
    try:
        return json.dumps(value)
    except TypeError:
        return json.dumps(value, default=str)


def _cut(text: str, limit: int = _PREVIEW) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def trace_ids(key: str) -> tuple[str, str]:
    """(trace id ``tr-<32 hex>``, span id ``<16 hex>``) derived from ``key``: the same call, the same ids."""
    digest = hashlib.blake2b(key.encode("utf-8", "replace"), digest_size=24).hexdigest()
    return f"tr-{digest[:32]}", digest[32:]


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
        self._artifacts: dict[str, tuple[str, str]] = {}

    def _artifacts_of(self, experiment_id: str, trace_id: str) -> str:
        """Where MLflow would keep the trace's artifacts: ``<experiment's artifacts>/traces/<id>/artifacts``."""
        from mlflow.utils.uri import append_to_uri_path

        if experiment_id not in self._artifacts:  # MLflow's own join, once an experiment; then the id put in it
            root = self.store.get_experiment(experiment_id).artifact_location
            self._artifacts[experiment_id] = (append_to_uri_path(root, "traces", _ID, "artifacts"), _ID)
        template, mark = self._artifacts[experiment_id]
        return template.replace(mark, trace_id)

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
                if values:  # the table's own INSERT, executemany: not the ORM's bulk path, row by row
                    session.execute(insert(model.__table__), values)
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
        tags = {**t.tags, MLFLOW_ARTIFACT_LOCATION: self._artifacts_of(t.experiment_id, t.trace_id),
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


def sink_for(client: Any) -> _Sink:
    """The sink of ``client``'s store: its SQL tables, else MLflow's client path (a tracking server)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    return _SqlSink(store) if isinstance(store, SqlAlchemyStore) else _ClientSink(client.tracking_uri)
