"""Evaluation throughput: 500 examples, a stub server with 100 ms per call, 16 threads.

The limit is 500 x 0.1 s / 16 = 3.125 s; the last line prints wall time / limit (target <= 1.15).
Run: .venv/bin/python bench/eval_throughput.py
"""

from __future__ import annotations

import time

from _common import StubProcess, sentences

N, LATENCY, THREADS = 500, 0.1, 16


def main() -> None:
    from core.evaluate import evaluate
    from core.models import openai_compatible
    from core.program import make_program, to_examples
    from core.tasks import table_task

    df = sentences(N)
    task = table_task(df, text_column="description", label_column="target", name="bench")
    examples = to_examples(df, task)
    with StubProcess(LATENCY) as stub:
        spec = openai_compatible("stub", "stub-small", stub.base_url, input_price_per_m=0.07, output_price_per_m=0.3)
        evaluate(make_program(task), spec, examples[:THREADS], task, threads=THREADS, cache=False)  # warm up
        start = time.perf_counter()
        res = evaluate(make_program(task), spec, examples, task, threads=THREADS, cache=False)
        wall = time.perf_counter() - start
    limit = N * LATENCY / THREADS
    per_call_overhead = max(0.0, wall * THREADS / N - LATENCY)
    print(f"examples: {N}, latency per call: {LATENCY * 1000:.0f} ms, threads: {THREADS}")
    print(f"errors: {int(res.metrics['errors'])}, accuracy (keyword stub): {res.metrics['accuracy']:.3f}")
    print(f"cost: ${res.metrics['cost_usd']:.6f} for {int(res.metrics['input_tokens'])} in / "
          f"{int(res.metrics['output_tokens'])} out tokens")
    print(f"seed notebook's sequential loop (computed): {N} x ({LATENCY:.3f} + {per_call_overhead:.4f}) s = "
          f"{N * (LATENCY + per_call_overhead):.1f} s")
    print(f"wall time: {wall:.3f} s")
    print(f"limit: {limit:.3f} s")
    print(f"ratio wall/limit: {wall / limit:.3f}")


if __name__ == "__main__":
    main()
