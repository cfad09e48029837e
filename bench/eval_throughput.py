"""Evaluation throughput against a stub server in its own process; the floor is examples x latency / threads.

Each case is an evaluation run as a user starts it (an MLflow run on a fresh SQLite store), with MLflow traces on
(the default: one trace per LM call) and then off; the targets are for traces on.
1. 500 examples, 100 ms per call, 16 threads: floor 3.125 s (target: wall within 1.05 of it).
2. 5,000 examples, 500 ms per call, 64 threads: floor 39.06 s (target: within 1.10), with the evaluating
   process's peak RSS (target: under 600 MB). At 100 ms the two cores, not the LM, would be the bound.
3. A three-field extraction task (the shipped ``extract``: drug, dose, condition, each scored by token F1), 500
   examples, 100 ms per call, 16 threads: the same target as case 1; and the built-in scorer's time per example
   (target: under 0.5 ms).
Prints each case (traces on, then off; the 100 ms cases three times each, in turn, judged by their medians), the
client CPU per example, then the worse of the traces-on ratios last.
Cases 1 and 2 also time the same calls through a bare HTTP client (no DSPy, no studio), so the stub's and HTTP's own
cost above the floor is printed apart from the studio's ("wall / bare HTTP"), and first this machine's floor: the
rounds a pool of that many threads needs (500 / 16 is 31.25: 32 rounds), times one bare call's round trip.
Run: .venv/bin/python bench/eval_throughput.py [--quick]  (--quick: case 2 with 1,000 examples)
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import timeit

import pandas as pd
from _common import StubProcess, bare_call_s, bare_http_wall, evaluation_run, sentences

CASES = ((500, 0.1, 16, 1.05), (5000, 0.5, 64, 1.10))
EXTRACT = (500, 0.1, 16, 1.05)
SCORER_MS = 0.5
REPEATS = 3  # a 3 s case is run this many times, traces on and off in turn, and judged by its median


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def settings_order(latency: float) -> tuple[bool, ...]:
    """Traces on, off, on, off...: REPEATS times for a case of a few seconds (one run of it varies by about 0.05
    on this shared machine), once for a long one."""
    return (True, False) * (REPEATS if latency <= 0.1 else 1)


def medians(ratios: dict[bool, list[float]], what: str) -> float:
    """Prints the median ratio of each setting when a case ran more than once; returns the traces-on one."""
    on, off = statistics.median(ratios[True]), statistics.median(ratios[False])
    if len(ratios[True]) > 1:
        print(f"{what}: median of {len(ratios[True])} runs, traces on {on:.3f}, off {off:.3f}", flush=True)
    return on


def extraction_rows(n: int) -> tuple[object, pd.DataFrame]:
    """The shipped extraction task and ``n`` of its rows (repeated, each sentence made unique: no cache hits)."""
    from core.config.settings import load_settings
    from core.tasks import TaskRef, load_tables

    task, table, _ = load_tables(TaskRef(kind="extract"), load_settings())
    rows = pd.concat([table] * -(-n // len(table)), ignore_index=True).head(n).copy()
    rows["sentence"] = [f"{s} [{i}]" for i, s in enumerate(rows["sentence"])]
    return task, rows


def scorer_ms(task: object, records: pd.DataFrame) -> float:
    """The task's scorer's time per example (ms), over the run's own gold and predicted values."""
    import json

    from core.scoring import make_scorer

    scorer = make_scorer(task.output_specs, task.metric)  # type: ignore[attr-defined]
    pairs = [(json.loads(g), json.loads(p)) for g, p in zip(records["gold"], records["predicted"], strict=True)
             if isinstance(p, str) and p.startswith("{")]
    calls = max(1, 10_000 // max(1, len(pairs)))
    seconds = timeit.timeit(lambda: [scorer({}, g, p) for g, p in pairs], number=calls)
    return seconds / (calls * len(pairs)) * 1000


def extraction_case() -> float:
    """Case 3; returns its traces-on ratio."""
    n, latency, threads, target = EXTRACT
    limit, (task, rows) = n * latency / threads, extraction_rows(n)
    ratios: dict[bool, list[float]] = {True: [], False: []}
    with StubProcess(latency, responder="tasks") as stub:
        for traces in settings_order(latency):
            r = evaluation_run(rows, stub.base_url, threads, traces=traces, task=task, input_price_per_m=0.07,
                               output_price_per_m=0.3)
            m = r["metrics"]
            ratios[traces].append(r["wall"] / limit)
            print(f"extraction (3 fields, token F1), {n} examples, {latency * 1000:.0f} ms per call, {threads} "
                  f"threads, traces {'on ' if traces else 'off'}: wall {r['wall']:.2f} s, limit {limit:.2f} s, "
                  f"ratio {r['wall'] / limit:.3f} (target <= {target:.2f}); client CPU {r['cpu'] / n * 1000:.2f} ms "
                  f"per example; failed {int(m['failed'])}, mean token F1 {m['score']:.3f}", flush=True)
            if not traces and len(ratios[False]) == 1:
                from core.evaluation.baseline import run_dir
                from core.evaluation.records import read_records

                records = read_records(run_dir(r["store"], r["run_id"]) / "records.jsonl")
                if len(records):
                    print(f"the task's scorer: {scorer_ms(task, records):.3f} ms per example (target < "
                          f"{SCORER_MS} ms)")
    return medians(ratios, "extraction")


def main() -> None:
    cases = CASES if "--quick" not in sys.argv else (CASES[0], (1000, 0.5, 64, 1.10))
    ratios = []
    for n, latency, threads, target in cases:
        limit = n * latency / threads
        df = sentences(n)
        with StubProcess(latency) as stub:
            one, rounds = bare_call_s(stub.base_url), math.ceil(n / threads)
            print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads, this machine's floor: "
                  f"{threads} threads take {rounds} rounds ({rounds * latency / limit:.3f} of the limit), one bare "
                  f"call {one * 1000:.1f} ms; together {rounds * one / limit:.3f} of the limit, before any client's "
                  "work",
                  flush=True)
            bare = bare_http_wall(stub.base_url, [str(t) for t in df["description"]], threads)
            print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads, bare HTTP client (no DSPy, no "
                  f"studio): wall {bare:.2f} s, ratio {bare / limit:.3f}: the stub and HTTP alone", flush=True)
            runs: dict[bool, list[float]] = {True: [], False: []}
            for traces in settings_order(latency):
                r = evaluation_run(df, stub.base_url, threads, traces=traces, input_price_per_m=0.07,
                                   output_price_per_m=0.3)
                m = r["metrics"]
                runs[traces].append(r["wall"] / limit)
                print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads, traces "
                      f"{'on ' if traces else 'off'}: wall {r['wall']:.2f} s, limit {limit:.2f} s, ratio "
                      f"{r['wall'] / limit:.3f} (target <= {target:.2f}); client CPU {r['cpu'] / n * 1000:.2f} ms per "
                      f"example; traces {r['traces']}; failed {int(m['failed'])}, accuracy (keyword stub) "
                      f"{m['accuracy']:.3f}, cost ${m['cost_usd']:.6f}; the studio's own share: wall / bare HTTP "
                      f"{r['wall'] / bare:.3f}", flush=True)
            ratios.append(medians(runs, f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads"))
        if latency > 0.1:  # the large case: the memory target is for it (the runs after it add their own)
            print(f"peak RSS of the evaluating process after {n} examples: {peak_rss_mb():.0f} MB (target < 600 MB)")
    if "--no-extract" not in sys.argv:
        ratios.append(extraction_case())
    print(f"peak RSS of the evaluating process at the end (every run of this bench): {peak_rss_mb():.0f} MB")
    print(f"worse ratio wall/limit, traces on: {max(ratios):.3f}")


if __name__ == "__main__":
    main()
