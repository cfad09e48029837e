"""Word-level diffs of two texts (original vs optimized prompt), as HTML and as counts."""

from __future__ import annotations

import difflib
import html
import re

_TOKENS = re.compile(r"\s+|[^\s]+")
DIFF_STYLE = (
    "<style>.gs-diff{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:0.85rem;"
    "line-height:1.45;border:1px solid rgba(128,128,128,.3);border-radius:6px;padding:.75rem;margin:0}"
    ".gs-diff ins{background:#d1fadf;color:#05603a;text-decoration:none}"
    ".gs-diff del{background:#fee4e2;color:#912018}</style>"
)


def diff_html(before: str, after: str) -> str:
    """A word-level diff of two texts as HTML: removed words in <del>, added words in <ins>, rest escaped."""
    a, b = _TOKENS.findall(before or ""), _TOKENS.findall(after or "")
    out: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        old, new = html.escape("".join(a[i1:i2])), html.escape("".join(b[j1:j2]))
        if op == "equal":
            out.append(old)
        if op in ("delete", "replace") and old:
            out.append(f"<del>{old}</del>")
        if op in ("insert", "replace") and new:
            out.append(f"<ins>{new}</ins>")
    return f'{DIFF_STYLE}<pre class="gs-diff">{"".join(out)}</pre>'


def diff_counts(before: str, after: str) -> dict[str, int]:
    """Words removed and added between two texts."""
    a, b = (before or "").split(), (after or "").split()
    removed = added = 0
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("delete", "replace"):
            removed += i2 - i1
        if op in ("insert", "replace"):
            added += j2 - j1
    return {"removed": removed, "added": added}

