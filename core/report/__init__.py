"""A report to share: one self-contained HTML file over some runs, that opens offline.

``build_report(store, run_ids)`` gives the page: which runs it covers, then for each optimization its verdict
original → optimized, flipped examples, prompt growth, GEPA's search and both prompts; then the evaluations
compared (accuracy, cost, per-label F1, confusion matrices, the verdict of each pair on the same examples). Runs of a
task scored in [0, 1] (not classification) read by their metric instead: the score with its interval, the accuracy
(all answers right) beside it, a paired test on the scores, each output field's score and the examples whose score
changed most; no per-label F1 or confusion matrix (``core.report.scored``).
plotly's JavaScript is embedded once; the CSS is inline; no URL is loaded; every user text is escaped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from core.analytics.diff import DIFF_STYLE
from core.config.errors import ConfigError
from core.config.secrets import scrub
from core.report import data, evaluations, optimization, payback
from core.report.page import Column, Figures, esc, page, para, table
from core.tracking.runs import module_name
from core.tracking.store import RunStore

logger = logging.getLogger(__name__)

__all__ = ["build_report", "default_path", "write_report"]


def build_report(store: RunStore, run_ids: Sequence[str], *, now: datetime | None = None,
                 references: Mapping[str, str] | None = None) -> str:
    """One self-contained HTML page over ``run_ids`` (optimizations, evaluations, baselines); ``references``: per
    optimization, the evaluation its break-even is against (as picked on Compare; else the most expensive usable
    evaluation in the report)."""
    report = data.load(store, run_ids)
    reader = data.Reader(store)
    made = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    figs = Figures()
    tasks = sorted({str(r.row.get("task") or "?") for r in report.runs})
    title = f"GEPA Studio report · {', '.join(tasks)}"
    body = [f"<h1>{esc(title)}</h1>",
            para(f"Made {made:%Y-%m-%d %H:%M} UTC from the MLflow store at {_where(store)}; "
                 f"it covers {len(report.runs)} run{'s' if len(report.runs) != 1 else ''}.", "muted"),
            _covered(report), DIFF_STYLE]
    skip: set[frozenset[str]] = set()
    for opt in report.optimizations:
        reference = payback.reference_of(opt, report.evaluations, (references or {}).get(opt.info.run_id))
        body.append(optimization.section(reader, opt, figs, reference))
        if opt.original is not None and opt.optimized is not None:
            skip.add(frozenset((opt.original.run_id, opt.optimized.run_id)))
    if report.evaluations:
        body.append(evaluations.section(reader, report, figs, skip))
    body.append(para(f"{figs.count} charts. Written by GEPA Studio (python -m core report); this file needs no "
                     "network to open.", "muted small"))
    logger.info("Report over %d runs: %d charts", len(report.runs), figs.count)
    return page(title, "".join(body), figs.count, {"generated": made.isoformat(timespec="seconds")})


def _covered(report: data.ReportData) -> str:
    """The runs asked for: kind, model, program, task, n, status, start, id (each row links to its section)."""
    rows = []
    for r in report.runs:
        row, m, p = r.row, r.metrics, r.params
        is_opt = r.kind == "optimization"
        program = module_name(row.get("module")) + (" · GEPA" if is_opt else f" · {row.get('program') or 'original'}")
        model = f"{row.get('model') or '?'} ← {row.get('reflection_model') or '?'}" if is_opt else row.get("model")
        n = p.get("n_test") if is_opt else m.get("n", p.get("n_test"))
        start = row.get("start_time")
        rows.append({"kind": r.kind, "model": model or row.get("run_name") or "?", "program": program,
                     "task": row.get("task") or "?", "n": "–" if n is None else f"{float(n):,.0f}",
                     "status": row.get("status") or "?", "degraded": "degraded" if row.get("degraded") else "",
                     "start": "–" if start is None or pd.isna(start) else f"{pd.Timestamp(start):%Y-%m-%d %H:%M}",
                     "run_id": r.run_id})
    return "<h2>Runs in this report</h2>" + table(pd.DataFrame(rows), [
        Column("kind", "kind"), Column("model", "model"), Column("program", "program"), Column("task", "task"),
        Column("n", "test examples", str, True), Column("status", "status"), Column("degraded", ""),
        Column("start", "started (UTC)"), Column("run_id", "run id", nowrap=True)])


def _where(store: RunStore) -> str:
    """The tracking URI without a user or password in it (and scrubbed of key values)."""
    uri = store.settings.tracking_uri
    parts = urlsplit(uri)
    if parts.username or parts.password:
        uri = urlunsplit(parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else "")))
    return scrub(uri)


def default_path(now: datetime | None = None) -> Path:
    """Where the CLI writes a report when not told: ``gepa-studio-report-<date>-<time>.html`` here."""
    made = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return Path(f"gepa-studio-report-{made:%Y-%m-%d-%H%M}.html")


def write_report(store: RunStore, run_ids: Sequence[str], path: str | Path) -> Path:
    """Build the report over ``run_ids`` and write it to ``path`` (a folder gets the default file name; folders are
    made as needed); returns the file's path."""
    html = build_report(store, run_ids)
    out = Path(path).expanduser()
    if out.is_dir():
        out = out / default_path().name
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"The report could not be written to {out}: {exc.strerror or exc}.",
                          "Pass another file with -o FILE (a folder you can write to).") from exc
    return out.resolve()
