"""Writes the MLflow traces of LM calls in batches, off the calls' path: the queue and thread between a call and the
store (:mod:`core.tracking.trace_store` holds a trace's form and how a batch is written).

A traced call hands :meth:`TraceWriter.submit` a function that builds its trace (given the configured secret
values, looked up once a batch: :func:`core.config.secrets.secret_values`); a background thread builds what was
submitted and writes it as one batch when the oldest waiting trace is :data:`FLUSH_INTERVAL_S` seconds old (sooner
when :data:`BATCH_SIZE` are waiting), and :meth:`TraceWriter.flush` writes everything at the end of a run.

Nothing is lost silently: what the store still refuses after its retries is counted per run
(:meth:`TraceWriter.take_dropped`), and the run logs that count (:func:`report_dropped`). A kill -9 loses the
traces of at most the last flush interval."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from core.config.secrets import secret_values
from core.tracking.trace_store import Trace, sink_for

logger = logging.getLogger(__name__)
Build = Callable[[frozenset[str]], Trace | None]  # builds one trace, given the secret values to scrub out

FLUSH_INTERVAL_S = 1.0  # a kill -9 loses at most this many seconds of traces
BATCH_SIZE = 500  # a batch this large is written at once, before the interval ends
MAX_PENDING = 200_000  # beyond this many unwritten traces (a store far slower than the model), new ones are dropped
DROPPED_METRIC = "traces_dropped"  # the run metric (and, with the studio prefix, tag) that counts unwritten traces


class TraceWriter:
    """The queue and background writer of one tracking store (one per tracking URI: :func:`writer_for`)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._cond = threading.Condition()
        self._pending: list[tuple[str, Build]] = []
        self._submitted = self._done = self._wanted = 0  # _wanted: what a waiting flush needs written
        self._oldest = 0.0  # when the oldest trace waiting to be written came
        self._dropped: Counter[str] = Counter()
        self._reasons: dict[str, str] = {}
        self._write_lock = threading.Lock()
        self._warned: set[str] = set()
        self._sink = sink_for(client)
        self._thread = threading.Thread(target=self._loop, name="studio-trace-writer", daemon=True)
        self._thread.start()

    def submit(self, run_id: str, build: Build) -> None:
        """Queue one trace; ``build`` runs in the writer thread (given the batch's secret values, to scrub with).
        Never blocks the caller beyond a lock."""
        with self._cond:
            if len(self._pending) >= MAX_PENDING:
                self._drop(run_id, 1, f"more than {MAX_PENDING} traces waiting to be written")
                return
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append((run_id, build))
            self._submitted += 1
            if len(self._pending) >= BATCH_SIZE:
                self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Write everything submitted so far; False when ``timeout_s`` passed first (the rest is written later)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._wanted = max(self._wanted, self._submitted)
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

    def _batch_due(self) -> bool:  # under self._cond
        return bool(self._pending) and (len(self._pending) >= BATCH_SIZE or self._done < self._wanted
                                        or time.monotonic() >= self._oldest + FLUSH_INTERVAL_S)

    def _drop(self, run_id: str, n: int, reason: str) -> None:  # under self._cond
        self._dropped[run_id] += n
        self._reasons[run_id] = reason

    def _loop(self) -> None:
        while True:
            with self._cond:  # one transaction a second, not one per trace (sooner: BATCH_SIZE wait, or a flush)
                while not self._batch_due():
                    left = self._oldest + FLUSH_INTERVAL_S - time.monotonic() if self._pending else FLUSH_INTERVAL_S
                    self._cond.wait(max(0.005, left))
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

    def _write(self, batch: list[tuple[str, Build]]) -> None:
        traces: list[Trace] = []
        failed: Counter[str] = Counter()
        reasons: dict[str, str] = {}
        secrets = secret_values()  # once a batch (a failure here drops the batch, counted: nothing unscrubbed)
        for run_id, build in batch:
            try:
                trace = build(secrets)
                time.sleep(0)  # lets a call whose answer came in take the GIL now, not after the whole batch
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
