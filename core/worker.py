"""Entry point of a job's process: ``python -m core.worker JOB_ID``."""

from __future__ import annotations

import logging
import sys

from core.jobs import JobManager, execute
from core.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m core.worker JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = execute(JobManager(load_settings()), args[0])
    return 0 if job.state in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    raise SystemExit(main())
