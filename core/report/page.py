"""The report's HTML parts: the page shell (inline CSS), escaped text, tables and embedded plotly figures.

Every piece of user text goes through :func:`esc`; nothing on the page points outside the file (plotly's JavaScript
is embedded once, with the first figure).
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

FIGURE_HEIGHT = 460  # px, when a figure sets none
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}  # the logo links to plotly.com: no link out
CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#d9dee4;--soft:#f5f7f9;--accent:#2251a3}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--ink)}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:1.7rem;margin:.2rem 0 .3rem}h2{font-size:1.35rem;margin:2.4rem 0 .6rem;padding-top:.8rem;
border-top:2px solid var(--line)}h3{font-size:1.08rem;margin:1.6rem 0 .5rem}
p{margin:.4rem 0 .7rem}.muted{color:var(--muted)}.small{font-size:.85rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.86em;background:var(--soft);padding:0 .25em;
border-radius:3px}
.verdict{font-size:1.05rem;border-left:4px solid var(--accent);background:var(--soft);padding:.6rem .9rem;
margin:.8rem 0}
.note{border-left:4px solid #c9a227;background:#fdf8e6;padding:.5rem .9rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.88rem;width:auto;max-width:100%}
th,td{border-bottom:1px solid var(--line);padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}td.text{max-width:480px;overflow-wrap:break-word;white-space:pre-wrap}td.nowrap{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.figure{margin:.6rem 0 1.2rem;border:1px solid var(--line);border-radius:6px;padding:4px}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:16px}.cols>div{min-width:0}
pre.prompt{white-space:pre-wrap;overflow-wrap:anywhere;font:.82rem/1.45 ui-monospace,Menlo,monospace;
background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:.7rem;margin:.3rem 0;max-height:520px;
overflow:auto}
details{margin:.3rem 0}summary{cursor:pointer;color:var(--accent)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.4rem 0 .8rem}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
@media print{.figure{break-inside:avoid}}
"""


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML (quotes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def pct(value: Any, digits: int = 1) -> str:
    return "–" if missing(value) else f"{float(value) * 100:.{digits}f}%"


def usd(value: Any) -> str:
    if missing(value):
        return "–"
    v = float(value)
    return f"${v:,.2f}" if abs(v) >= 100 else f"${v:.4f}" if abs(v) >= 0.0001 or v == 0 else f"${v:.2e}"


def num(value: Any, digits: int = 0) -> str:
    return "–" if missing(value) else f"{float(value):,.{digits}f}"


def para(text: str, cls: str = "") -> str:
    """A paragraph of plain text (escaped)."""
    return f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def facts(items: Iterable[tuple[str, str]]) -> str:
    """A definition list of (name, plain text) pairs."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if v not in (None, ""))
    return f'<dl class="facts">{rows}</dl>'


def pre(text: str, cls: str = "prompt") -> str:
    return f'<pre class="{cls}">{esc(text)}</pre>'


def details(summary: str, body_html: str) -> str:
    """A folded block: ``summary`` is plain text, ``body_html`` already HTML."""
    return f"<details><summary>{esc(summary)}</summary>{body_html}</details>"


@dataclass(frozen=True)
class Column:
    """A table column: the frame's ``key``, its heading, how a value reads, and whether it is a number."""

    key: str
    title: str
    fmt: Callable[[Any], str] = str
    numeric: bool = False
    nowrap: bool = False  # short values that read badly when broken ("wrong → right", run ids)


def table(frame: pd.DataFrame, columns: Sequence[Column], limit: int | None = None) -> str:
    """An HTML table of ``frame`` (escaped); the first ``limit`` rows, then a line saying how many were left out."""
    shown = [c for c in columns if c.key in frame.columns]
    rows = frame if limit is None else frame.head(limit)
    head = "".join(f"<th>{esc(c.title)}</th>" for c in shown)
    body = []
    for record in rows.to_dict("records"):
        cells = []
        for c in shown:
            value = record.get(c.key)
            text = "–" if missing(value) and c.fmt is str else c.fmt(value)
            css = "num" if c.numeric else "nowrap" if c.nowrap else "text"
            cells.append(f'<td class="{css}">{esc(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = len(frame) - len(rows)
    note = para(f"… and {more} more rows, left out here.", "muted small") if more > 0 else ""
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            f"{note}")


@dataclass
class Figures:
    """Embeds plotly figures: the first carries plotly's JavaScript, the rest refer to it; counts what it drew."""

    count: int = 0
    titles: list[str] = field(default_factory=list)

    def add(self, fig: Any) -> str:
        """The figure as an HTML block (``<div class="figure">``)."""
        self.count += 1
        height = fig.layout.height or FIGURE_HEIGHT
        part = fig.to_html(full_html=False, include_plotlyjs=self.count == 1, config=PLOTLY_CONFIG,
                           default_width="100%", default_height=f"{int(height)}px", div_id=f"figure-{self.count}")
        title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else ""
        self.titles.append(str(title))
        return f'<div class="figure">{part}</div>'


def page(title: str, body: str, figures: int, meta: Mapping[str, str] | None = None) -> str:
    """The whole document: one file, inline CSS, no link out. ``figures`` is how many charts it holds."""
    extra = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">' for k, v in (meta or {}).items())
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"gepa-studio-figures\" content=\"{figures}\">{extra}"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")
