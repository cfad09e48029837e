"""The stub's LLM judge for the shipped ``rewrite`` task (see tests/stub_tasks.py): it finds its inputs by name,
whatever the judge's signature calls them, and scores a rewrite by the shorthand it expands and its overlap with
the expected one."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from tests.stub_tasks import RESPOND, SHORTHAND, chat_reply, field_names, note_tokens, words
from tests.stub_text import last_user_text, system_text

# The judge's inputs by name: the expected answer is the first holding one of EXPECTED's words (in their order), the
# judged one the first other holding one of PREDICTED's ("expected_output" is expected; a bare "reference" is either).
EXPECTED = ("expect", "gold", "target", "correct", "ideal", "reference")
PREDICTED = ("pred", "output", "response", "answer", "candidate", "generated", "actual", "rewrite", "reference")


def plain_value(text: str) -> str:
    """A judge input as text: the string values of a JSON object, or the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return " ".join(str(v) for v in value.values()) if isinstance(value, dict) else str(value)


def token_f1(predicted: str, expected: str) -> float:
    """SQuAD's token F1: lower case, no punctuation or articles."""
    def norm(s: str) -> list[str]:
        return re.sub(r"\b(a|an|the)\b", " ", re.sub(r"[^\w\s]", "", s.lower())).split()
    p, e = norm(predicted), norm(expected)
    if not p or not e:
        return float(p == e)
    same = sum((Counter(p) & Counter(e)).values())
    return 0.0 if not same else 2 * same / (len(p) + len(e))


def judge_score(note: str, expected: str, predicted: str) -> tuple[float, str]:
    """Half the share of the note's shorthand expanded (or of the expected rewrite's), half the token F1."""
    if not predicted.strip():
        return 0.0, "There is no rewrite to judge."
    tokens, said = note_tokens(note), note_tokens(predicted)
    pairs = [(s, p) for s, p in SHORTHAND.items() if s in tokens] or [
        (s, p) for s, p in SHORTHAND.items() if re.search(words(p), expected, re.I)]
    left = [s for s, p in pairs if s in said or not re.search(words(p), predicted, re.I)]
    share = 1 - len(left) / len(pairs) if pairs else 1.0
    f1 = token_f1(predicted, expected)
    why = (f"{len(pairs) - len(left)} of {len(pairs)} abbreviations expanded"
           + (f" (left: {', '.join(left)})" if left else "") + f"; overlap with the expected rewrite {f1:.2f}.")
    return round(0.5 * share + 0.5 * f1, 2), why


def judge_reply(messages: list[dict[str, Any]], body: dict[str, Any]) -> str:
    """The judge's rationale and score; its inputs are found by name, whatever the judge's signature calls them."""
    user = last_user_text(messages).split(RESPOND)[0]
    parts = re.split(r"\[\[ ## (\w+) ## \]\]\n", user)
    fields = {name: plain_value(value.strip()) for name, value in zip(parts[1::2], parts[2::2], strict=True)}
    fields.pop("rubric", None)
    expected = next((k for w in EXPECTED for k in fields if w in k), "")
    predicted = next((k for w in PREDICTED for k in fields if w in k and k != expected), "")
    note = " ".join(v for k, v in fields.items() if k not in (expected, predicted))
    score, why = judge_score(note, fields.get(expected, ""), fields.get(predicted, ""))
    return chat_reply({"rationale": why, "score": score}, field_names(system_text(messages)), body)


