"""Faults: a 500-example baseline against a stub server that misbehaves, then one that dies.

1. 10 % of calls get a 429 (Retry-After 1 s), 5 % a 500, 5 % hang past the client's timeout and 5 % a malformed
   body; the model retries (2 retries, its default). Prints the share of examples accounted for (correct, wrong
   or failed with a kind: must be 100 %), the share answered after retries, failures by kind, and the wall time
   against the same run without faults. Both are evaluation runs as a user starts them (an MLflow run, traces on:
   one trace per call, failed ones too); the faulty run is then repeated with traces off, its wall printed beside.
2. The server dies after 50 calls, at default settings (timeout 120 s, 2 retries, the default circuit breaker):
   seconds from its death (a watcher connecting to its port every 10 ms sees it refuse) to the run's stop, and
   the records kept.
Last line: ``accounted 100.0%, stopped N.N s after the provider died``.
Run: .venv/bin/python bench/faults.py
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

from _common import StubProcess, evaluation_run, sentences

N, LATENCY, THREADS, TIMEOUT_S = 500, 0.05, 16, 2.0
FAULTS = {"rate_limit": 0.10, "retry_after_s": 1.0, "server_error": 0.05, "timeout": 0.05, "hang_s": 6.0,
          "malformed": 0.05, "seed": 7}


def watch_death(port: int, died: list[float], stop: threading.Event) -> None:
    """Note when the server's port stops accepting connections."""
    while not stop.is_set():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            died.append(time.perf_counter())
            return
        time.sleep(0.01)


def main() -> None:
    from core.evaluation.evaluate import EvalOptions, evaluate, read_records
    from core.lm.breaker import FAILURE_KINDS, BreakerTripped
    from core.lm.models import openai_compatible
    from core.program.program import make_program, to_examples
    from core.tasks import table_task

    df = sentences(N)
    task = table_task(df, text_column="description", label_column="target", name="bench")
    examples = to_examples(df, task)
    program = make_program(task)

    with StubProcess(LATENCY) as stub:
        clean_wall = evaluation_run(df, stub.base_url, THREADS, traces=True, timeout_s=TIMEOUT_S)["wall"]
    with StubProcess(LATENCY, faults=FAULTS) as stub:
        run = evaluation_run(df, stub.base_url, THREADS, traces=True, timeout_s=TIMEOUT_S)
    with StubProcess(LATENCY, faults=FAULTS) as stub:
        off_wall = evaluation_run(df, stub.base_url, THREADS, traces=False, timeout_s=TIMEOUT_S)["wall"]
    wall, m = run["wall"], run["metrics"]
    recs = read_records(run["data"] / "runs" / run["run_id"] / "records.jsonl")
    accounted = recs["outcome"].isin(["correct", "wrong", "failed"]).sum() / N
    retried = int((recs["attempts"] > 1).sum())
    answered_after_retry = int(((recs["attempts"] > 1) & (recs["outcome"] != "failed")).sum())
    print("faults per call: "
          f"{', '.join(f'{k} {v:.0%}' for k, v in FAULTS.items() if k in FAILURE_KINDS or k == 'malformed')}"
          f" (Retry-After {FAULTS['retry_after_s']:g} s, client timeout {TIMEOUT_S:g} s, 2 retries)")
    print(f"examples: {N}, threads: {THREADS}, stub latency {LATENCY * 1000:.0f} ms")
    print(f"accounted for: {accounted:.1%} (correct {int(m['correct'])}, wrong "
          f"{N - int(m['correct']) - int(m['failed'])}, failed {int(m['failed'])})")
    print(f"answered: {m['answered'] / N:.1%} ({retried} examples needed a retry, {answered_after_retry} of them "
          "answered after it)")
    print("failures by kind: " + (", ".join(f"{k} {int(m[f'failed_{k}'])}" for k in FAILURE_KINDS
                                            if m[f"failed_{k}"]) or "none") + " (a malformed body is a server_error)")
    print(f"accuracy over all examples {m['accuracy']:.1%}, over answered {m['accuracy_answered']:.1%}")
    print(f"traces: {run['traces']} (one per call, failed ones included)")
    print(f"wall: {wall:.2f} s with faults, {clean_wall:.2f} s without: ratio {wall / clean_wall:.2f} (traces on); "
          f"with faults and traces off {off_wall:.2f} s")

    with StubProcess(LATENCY, faults={"die_after": 50}) as stub:
        spec = openai_compatible("stub", "stub-small", stub.base_url)  # default timeout, retries and breaker
        died: list[float] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_death, args=(stub.port, died, stop), daemon=True)
        watcher.start()
        path = Path(tempfile.mkdtemp(prefix="bench-faults-")) / "records.jsonl"
        message = ""
        try:
            evaluate(program, spec, examples, task, EvalOptions(threads=THREADS, cache=False, records_path=path))
        except BreakerTripped as exc:
            message = exc.message
        stopped = time.perf_counter()
        stop.set()
    kept = read_records(path)
    after = stopped - died[0] if died else float("nan")
    print(f"server died after 50 calls: {message or 'the run was NOT stopped'}")
    print(f"records kept: {len(kept)} ({int((kept['outcome'] != 'failed').sum())} answered before the death, "
          f"{int((kept['outcome'] == 'failed').sum())} failed); {N - len(kept)} left for a resume")
    print(f"accounted {accounted:.1%}, stopped {after:.1f} s after the provider died")


if __name__ == "__main__":
    main()
