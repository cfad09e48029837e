"""``python -m core report RUN_ID [RUN_ID ...] [-o FILE]``: one self-contained HTML report over some runs."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from core.config.settings import load_settings

logger = logging.getLogger(__name__)


def cmd_report(args: argparse.Namespace) -> int:
    from core.report import default_path, write_report
    from core.tracking.store import RunStore

    store = RunStore(load_settings())
    path = write_report(store, args.run_ids, args.output or default_path())
    print(path)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("report", help="write one self-contained HTML report (opens offline) over some runs",
                       description="Optimizations get GEPA's search, the verdict original → optimized and both "
                                   "prompts; evaluations and baselines are compared (accuracy, cost, per-label F1, "
                                   "confusion matrices, a verdict for each pair on the same examples).",
                       epilog="Exit status: 0 written; 2 an unknown run id or another problem (said on stderr).")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="MLflow run ids (History lists them)")
    p.add_argument("-o", "--output", help="the HTML file to write (default: gepa-studio-report-<date>-<time>.html "
                                          "in this folder)")
    p.set_defaults(func=cmd_report)
