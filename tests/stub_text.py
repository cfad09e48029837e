"""Text helpers of the stub server (tests/stub_server.py): the labels, the keyword rules that decide them, and the
pieces of DSPy's ChatAdapter format the stub reads and writes."""

from __future__ import annotations

import re
from typing import Any

LABELS = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")

# Keyword rules used by ``keyword_label``: the first label whose word appears wins.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "OBJECTIVE": ("aim", "objective", "purpose", "we sought", "to determine", "to assess"),
    "METHODS": ("randomized", "randomised", "were assigned", "participants", "measured", "enrolled"),
    "RESULTS": ("significant", "p <", "increased", "decreased", "compared with", "%"),
    "CONCLUSIONS": ("conclude", "suggest", "should", "may be", "in conclusion"),
    "BACKGROUND": ("is a", "are common", "remains", "unknown", "burden", "little is known"),
}


def keyword_label(sentence: str, default: str = "BACKGROUND") -> str:
    """Label a sentence by the first keyword rule that matches it."""
    low = sentence.lower()
    for label, words in KEYWORDS.items():
        if any(w in low for w in words):
            return label
    return default


def field_value(text: str, name: str) -> str:
    """Return the value of ``[[ ## name ## ]]`` in a ChatAdapter user message ('' if absent)."""
    m = re.search(r"\[\[ ## " + re.escape(name) + r" ## \]\]\n(.*?)(?=\n\n|\Z)", text, re.S)
    return m.group(1).strip() if m else ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, list):
                return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def system_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")


def chat_answer(field_name: str, value: str) -> str:
    """An answer in DSPy's ChatAdapter format."""
    return f"[[ ## {field_name} ## ]]\n{value}\n\n[[ ## completed ## ]]"


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: whitespace-separated words."""
    return len(text.split())
