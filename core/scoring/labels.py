"""Reading a label out of a model's answer: the one place a label field's answer is matched to its label set.

Moved here from ``core.program.metric`` (which now imports it) so that the scorers, below the program in the
layers, read labels exactly as classification always has.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from core.tasks import label_key

# What a model wraps an answer in: quotes, backticks, brackets, markdown bold; tried outermost first.
_WRAPPERS = (("**", "**"), ("`", "`"), ('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"),
             ("[", "]"), ("(", ")"), ("{", "}"), ("<", ">"))


def _unwrapped(text: str) -> list[str]:
    """``text``, then ``text`` with one wrapper pair removed at a time (and a final full stop dropped)."""
    out = [text.strip()]
    while True:
        current = out[-1]
        inner = next((current[len(a):-len(b)].strip() for a, b in _WRAPPERS
                      if len(current) >= len(a) + len(b) and current.startswith(a) and current.endswith(b)), None)
        if inner is None and current.endswith(".") and len(current) > 1:
            inner = current[:-1].strip()
        if not inner or inner in out:
            return out
        out.append(inner)


@functools.lru_cache(maxsize=64)
def _label_index(labels: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Two lookups: label_key -> label, and label_key of the label without its own quotes -> label.

    A key two labels share is left out, so a lookup never picks one of two labels at random.
    """
    def unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
        seen: dict[str, str | None] = {}
        for key, label in pairs:
            seen[key] = label if seen.get(key, label) == label else None
        return {k: v for k, v in seen.items() if v is not None}

    exact = unique([(label_key(label), label) for label in labels])
    bare = unique([(label_key(_unwrapped(label)[-1]), label) for label in labels])
    return exact, bare


def normalize_label(value: Any, labels: tuple[str, ...]) -> str | None:
    """The label ``value`` names, or None if it names none.

    Case, spacing, Unicode compatibility forms and invisible characters are ignored (the same
    :func:`core.tasks.label_key` that keeps a task's labels apart), and so are quotes, backticks or
    brackets the model wrapped its answer in; a label that itself holds quotes (``"positive"``, ``it's``)
    matches both with and without them.
    """
    if value is None:
        return None
    text = str(value)
    if text in labels:
        return text
    exact, bare = _label_index(tuple(labels))
    for candidate in _unwrapped(text):
        key = label_key(candidate)
        if key in exact:
            return exact[key]
    for candidate in _unwrapped(text):
        key = label_key(candidate)
        if key in bare:
            return bare[key]
    return None


def label_in_completion(text: str, field: str, labels: tuple[str, ...]) -> str | None:
    """The label a raw completion the adapter could not parse names in ``field`` (DSPy's ChatAdapter
    ``[[ ## field ## ]]`` section or a JSON object), or None: "POSITIVE" for "positive" is still that label."""
    section = re.search(r"\[\[ ## " + re.escape(field) + r" ## \]\]\s*\n(.*?)(?=\n\s*\[\[ ## |\Z)", text, re.S)
    if section:
        return normalize_label(section.group(1).strip(), labels)
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return normalize_label(obj.get(field), labels) if isinstance(obj, dict) else None
