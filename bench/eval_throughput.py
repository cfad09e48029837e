"""Evaluation throughput against a stub server in its own process; the floor is examples x latency / threads.

1. 500 examples, 100 ms per call, 16 threads: floor 3.125 s (target: wall within 1.05 of it).
2. 5,000 examples, 500 ms per call, 64 threads: floor 39.06 s (target: within 1.10), with the evaluating
   process's peak RSS (target: under 600 MB). At 100 ms the two cores, not the LM, would be the bound.
Prints each case, the client CPU per example, then the worse of the two ratios last.
Run: .venv/bin/python bench/eval_throughput.py [--quick]  (--quick: case 2 with 1,000 examples)
"""

from __future__ import annotations

import resource
import sys
import time

from _common import StubProcess, sentences

CASES = ((500, 0.1, 16, 1.05), (5000, 0.5, 64, 1.10))


def run_case(n: int, latency: float, threads: int) -> tuple[float, float, dict[str, float]]:
    """(wall seconds, client CPU seconds, metrics) of one evaluation of ``n`` examples."""
    from core.evaluation.evaluate import evaluate
    from core.lm.models import openai_compatible
    from core.program.program import make_program, to_examples
    from core.tasks import table_task

    df = sentences(n)
    task = table_task(df, text_column="description", label_column="target", name="bench")
    examples = to_examples(df, task)
    with StubProcess(latency) as stub:
        spec = openai_compatible("stub", "stub-small", stub.base_url, input_price_per_m=0.07, output_price_per_m=0.3)
        evaluate(make_program(task), spec, examples[:threads], task, threads=threads, cache=False)  # warm up
        cpu, start = time.process_time(), time.perf_counter()
        res = evaluate(make_program(task), spec, examples, task, threads=threads, cache=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return wall, cpu, res.metrics


def main() -> None:
    cases = CASES if "--quick" not in sys.argv else (CASES[0], (1000, 0.5, 64, 1.10))
    ratios = []
    for n, latency, threads, target in cases:
        wall, cpu, m = run_case(n, latency, threads)
        limit = n * latency / threads
        ratios.append(wall / limit)
        print(f"{n} examples, {latency * 1000:.0f} ms per call, {threads} threads: wall {wall:.2f} s, limit "
              f"{limit:.2f} s, ratio {wall / limit:.3f} (target <= {target:.2f}); client CPU {cpu / n * 1000:.2f} ms "
              f"per example; failed {int(m['failed'])}, accuracy (keyword stub) {m['accuracy']:.3f}, cost "
              f"${m['cost_usd']:.6f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of the evaluating process: {peak_mb:.0f} MB (target < 600 MB)")
    print(f"worse ratio wall/limit: {max(ratios):.3f}")


if __name__ == "__main__":
    main()
