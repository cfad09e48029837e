"""``python -m core program describe FILE.py:NAME [--metric FILE.py:FN]``: what your own DSPy program holds (its
predictors, their fields and instructions, its inputs and identity), loaded as a run would load it."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any


def cmd_describe(args: argparse.Namespace) -> int:
    from core.program.user_program import describe

    with contextlib.redirect_stdout(sys.stderr):  # what the file prints as it loads is not the description
        info = describe(args.ref, args.metric, args.allowed_dir)
    if args.json:
        print(json.dumps(info.to_dict()))
        return 0
    print(f"{info.ref}: {len(info.predictors)} predictor(s); inputs {', '.join(info.inputs)}; identity {info.identity}")
    for p in info.predictors:
        print(f"  {p.name} ({p.kind}): {', '.join(p.inputs)} -> {', '.join(p.outputs)}")
        print(f"    instruction: {p.instruction.splitlines()[0] if p.instruction else '(none)'}")
    if info.metric:
        print(f"metric: {info.metric} (takes gold, pred, trace, pred_name, pred_trace)")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("program", help="your own DSPy program: what a file holds",
                       description="Load a Python file that defines a dspy.Module (an instance, a class of one, or a "
                                   "function that returns one) as a run would, and print its predictors, their "
                                   "fields and instructions, its inputs and its identity (a hash of the file and "
                                   "every predictor). Loading a file runs its code.",
                       epilog="Exit status: 0 described; 2 a file or name that is missing, does not load, is not a "
                              "program, has no predictor, or a metric GEPA cannot call (said on stderr).")
    p.add_argument("action", choices=["describe"])
    p.add_argument("ref", metavar="FILE.py:NAME", help="the program: a dspy.Module, a class of one or a function")
    p.add_argument("--metric", metavar="FILE.py:FN", help="a metric to check: metric(gold, pred, trace, pred_name, "
                                                         "pred_trace) -> score or dspy.Prediction(score, feedback)")
    p.add_argument("--allowed-dir", help="load only from files under this folder (the dashboard's rule)")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=cmd_describe)
