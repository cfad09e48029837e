"""Evaluation throughput against a stub server in its own process; the floor is examples x latency / threads.

Each case is an evaluation run as a user starts it (an MLflow run on a fresh SQLite store), with MLflow traces on
(the default: one trace per LM call) and then off; the targets are for traces on.
1. 500 examples, 100 ms per call, 16 threads: floor 3.125 s (target: wall within 1.05 of it).
2. 5,000 examples, 500 ms per call, 64 threads: floor 39.06 s (target: within 1.10), with the evaluating
   process's peak RSS (target: under 600 MB). At 100 ms the two cores, not the LM, would be the bound.
Prints each case (traces on, then off), the client CPU per example, then the worse of the traces-on ratios last.
Run: .venv/bin/python bench/eval_throughput.py [--quick]  (--quick: case 2 with 1,000 examples)
"""

from __future__ import annotations

import resource
import sys

from _common import StubProcess, evaluation_run, sentences

CASES = ((500, 0.1, 16, 1.05), (5000, 0.5, 64, 1.10))


def main() -> None:
    cases = CASES if "--quick" not in sys.argv else (CASES[0], (1000, 0.5, 64, 1.10))
    ratios = []
    for n, latency, threads, target in cases:
        limit = n * latency / threads
        df = sentences(n)
        with StubProcess(latency) as stub:
            for traces in (True, False):
                r = evaluation_run(df, stub.base_url, threads, traces=traces, input_price_per_m=0.07,
                                   output_price_per_m=0.3)
                m = r["metrics"]
                if traces:
                    ratios.append(r["wall"] / limit)
                print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads, traces "
                      f"{'on ' if traces else 'off'}: wall {r['wall']:.2f} s, limit {limit:.2f} s, ratio "
                      f"{r['wall'] / limit:.3f} (target <= {target:.2f}); client CPU {r['cpu'] / n * 1000:.2f} ms per "
                      f"example; traces {r['traces']}; failed {int(m['failed'])}, accuracy (keyword stub) "
                      f"{m['accuracy']:.3f}, cost ${m['cost_usd']:.6f}", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of the evaluating process: {peak_mb:.0f} MB (target < 600 MB)")
    print(f"worse ratio wall/limit, traces on: {max(ratios):.3f}")


if __name__ == "__main__":
    main()
