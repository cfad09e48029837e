"""``python -m core export RUN_ID [--name NAME]``: a program as a registered MLflow model, and how to use it."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from core.config.settings import load_settings

logger = logging.getLogger(__name__)


def cmd_export(args: argparse.Namespace) -> int:
    from core.ship.register import export_model, load_snippet, serve_command
    from core.tracking.store import TAG, RunStore

    store = RunStore(load_settings())
    shipped = export_model(store, args.run_id, name=args.name, allow_untested=args.allow_untested)
    if shipped.untested:
        print(f"warning: {shipped.uri} is UNTESTED: {shipped.untested} (tagged studio.tested=false on the "
              "model version)", file=sys.stderr)
    uri = store.settings.tracking_uri
    links = [f"run {shipped.run_id}"]
    if shipped.optimization_run_id and shipped.optimization_run_id != shipped.run_id:
        links.append(f"optimization {shipped.optimization_run_id}")
    if shipped.prompt_uri:
        links.append(f"prompt {shipped.prompt_uri}")
    print(f"Registered {shipped.uri} ({', '.join(links)})\n")
    program = store.client.get_model_version(shipped.name, shipped.version).tags.get(f"{TAG}program_ref")
    if program:  # your own program: the model carries a copy of its file and runs it wherever it is loaded
        print(f"It carries your program's file ({program.rpartition(':')[0]}) and runs it where it is loaded or "
              "served: do that only where that code may run.\n")
    print("Load it in Python:\n")
    print(load_snippet(shipped, uri))
    print("Serve it (the student's key variable must be set where it runs):\n")
    print(serve_command(shipped, uri))
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("export", help="register a program as an MLflow model (pyfunc) that loads and serves",
                       description="An optimization exports its optimized program; an evaluation or baseline run "
                                   "its program. The model is logged in that run, registered in MLflow's model "
                                   "registry and linked to the optimization run and its prompt-registry version. "
                                   "No key is stored: the served model reads the student's key variable. Your own "
                                   "program (--program) travels with a copy of its file, which the model runs.",
                       epilog="Exit status: 0 registered; 2 an unknown run id, a run without a program, a "
                              "program never evaluated on its test set (a cancelled, failed or capped "
                              "optimization, a stopped evaluation: refused unless --allow-untested), your own "
                              "program's file gone, changed since the run or holding a key, or another problem (said "
                              "on stderr).")
    p.add_argument("run_id", metavar="RUN_ID", help="an optimization, evaluation or baseline run id (History lists "
                                                    "them)")
    p.add_argument("--name", help="the registered model's name (default <task>-<student>-<program>; a new version "
                                  "when it exists; on Unity Catalog a bare name or catalog.schema.name, letters, "
                                  "digits and _)")
    p.add_argument("--allow-untested", action="store_true",
                   help="register a program that was never evaluated on its test set anyway (a warning on stderr; "
                        "the model version is tagged studio.tested=false with the reason)")
    p.set_defaults(func=cmd_export)
