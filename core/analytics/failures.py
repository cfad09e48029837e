"""Failures in words a user knows: one sentence per failure kind, examples of each, which runs count as failed (left
out of every default: a reference, "newest", a preselection), what a job's raw error means, and whether resuming a
job can change its outcome.

The table ``WORDS`` holds one entry per :data:`core.lm.breaker.FailureKind`; every page that shows failure counts
reads it (through ``kind_phrase`` / ``kind_sentence`` / ``failure_sentences``), so "parse 30" never reaches a user.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from core.lm.breaker import FAILURE_KINDS, PERMANENT_KINDS, FailureKind

logger = logging.getLogger(__name__)

EXAMPLE_CHARS = 80  # an example quoted in a sentence is cut to this many characters
EXAMPLE_COLUMNS = ["kind", "what went wrong", "idx", "gold", "answer or error", "text"]


@dataclass(frozen=True)
class FailureWords:
    """How one failure kind reads: ``one`` / ``many`` after a count ("30 answers were not one of your labels"),
    ``short`` after a count in a table cell or a chart ("30 not a label")."""

    one: str
    many: str
    short: str


def _no_answer(reason: str) -> tuple[str, str]:
    return f"example got no answer: {reason}", f"examples got no answer: {reason}"


WORDS: dict[FailureKind, FailureWords] = {
    "parse": FailureWords("answer was not one of your labels", "answers were not one of your labels", "not a label"),
    "rate_limit": FailureWords(*_no_answer("the provider refused calls for coming too fast (rate limit)"),
                               "rate-limited"),
    "server_error": FailureWords(*_no_answer("the provider answered with a server error"), "server error"),
    "timeout": FailureWords(*_no_answer("the server did not answer in time"), "timed out"),
    "unreachable": FailureWords(*_no_answer("the server could not be reached"), "server unreachable"),
    "auth": FailureWords(*_no_answer("the provider rejected the API key"), "key rejected"),
    "not_found": FailureWords(*_no_answer("the provider does not know this model name"), "unknown model"),
    "config": FailureWords(*_no_answer("the model's settings are incomplete or wrong"), "bad model settings"),
    "metric": FailureWords("answer could not be scored: your metric function failed on it",
                           "answers could not be scored: your metric function failed on them", "metric failed"),
    "judge": FailureWords("answer could not be scored: the judge failed or answered unreadably",
                          "answers could not be scored: the judge failed or answered unreadably", "judge failed"),
    "program": FailureWords("example failed in your program's own code", "examples failed in your program's own code",
                            "program raised"),
    "other": FailureWords(*_no_answer("the call failed for another reason"), "other error"),
}


def _words(kind: str) -> FailureWords:
    return WORDS.get(kind, WORDS["other"])  # type: ignore[call-overload]


def kind_phrase(kind: str, count: int) -> str:
    """"30 not a label", "9 server unreachable": a count and its kind, short enough for a table cell."""
    return f"{int(count)} {_words(kind).short}"


def quote(text: object, limit: int = EXAMPLE_CHARS) -> str:
    """An answer or an error as a sentence quotes it: one line, at most ``limit`` characters, in quotes."""
    line = " ".join(str(text).split())
    return f"'{line if len(line) <= limit else line[: limit - 1].rstrip() + '…'}'"


def kind_sentence(kind: str, count: int, example: object = None) -> str:
    """"30 answers were not one of your labels, e.g. 'Sure! It is…'" (the example only when there is one)."""
    words = _words(kind)
    text = f"{int(count)} {words.one if int(count) == 1 else words.many}"
    if example is not None and not (isinstance(example, float) and pd.isna(example)) and str(example).strip():
        text += f", e.g. {quote(example)}"
    return text


def counts_text(by_kind: Mapping[str, int]) -> str:
    """"9 server unreachable, 3 timed out": failures by kind, commonest first, for a cell or a progress line."""
    items = sorted(((k, int(v)) for k, v in by_kind.items() if int(v) > 0), key=lambda kv: -kv[1])
    return ", ".join(kind_phrase(k, v) for k, v in items)


def failure_sentences(by_kind: Mapping[str, int], examples: Mapping[str, str] | None = None) -> list[str]:
    """One ``kind_sentence`` per kind with failures, commonest first, each with its first example when given."""
    items = sorted(((k, int(v)) for k, v in by_kind.items() if int(v) > 0), key=lambda kv: -kv[1])
    return [kind_sentence(k, v, (examples or {}).get(k)) for k, v in items]


def failure_examples(records: pd.DataFrame | None) -> pd.DataFrame:
    """The failed examples of a run's ``records.csv``: kind, what went wrong (in words), idx, gold, the model's
    answer (an unparsed one) or the provider's error, and the text. Empty when the run logged none."""
    if records is None or records.empty or "outcome" not in records:
        return pd.DataFrame(columns=EXAMPLE_COLUMNS)
    failed = records[records["outcome"].astype(str) == "failed"]
    kinds = (failed["error_kind"] if "error_kind" in failed else pd.Series("other", index=failed.index)).fillna("other")
    raw = failed["raw_output"] if "raw_output" in failed else pd.Series(None, index=failed.index, dtype=object)
    error = failed["error"] if "error" in failed else pd.Series(None, index=failed.index, dtype=object)
    said = [r if k == "parse" and isinstance(r, str) and r.strip() else e for k, r, e in
            zip(kinds, raw, error, strict=True)]
    return pd.DataFrame({
        "kind": kinds.astype(str).to_numpy(), "what went wrong": [_words(k).many for k in kinds],
        "idx": failed["idx"].to_numpy() if "idx" in failed else None,
        "gold": failed["gold"].to_numpy() if "gold" in failed else None,
        "answer or error": ["" if s is None or (isinstance(s, float) and pd.isna(s)) else str(s) for s in said],
        "text": failed["text"].to_numpy() if "text" in failed else None,
    }, columns=EXAMPLE_COLUMNS)


def first_examples(examples: pd.DataFrame) -> dict[str, str]:
    """Kind → the first non-empty answer or error of that kind (``failure_examples``'s table)."""
    out: dict[str, str] = {}
    for kind, said in zip(examples["kind"], examples["answer or error"], strict=True):
        if said and kind not in out:
            out[str(kind)] = str(said)
    return out


# Failed runs stay out of defaults -------------------------------------------------------------------------------


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "1.0")


def failed_runs(frame: pd.DataFrame) -> pd.Series:
    """True for runs whose results are failures rather than the model's: degraded, ended FAILED, or every example
    failed. They are drawn as failures and never picked by default (a reference, "newest", a preselection)."""
    out = pd.Series(False, index=frame.index, dtype=bool)
    if "degraded" in frame:
        out |= frame["degraded"].map(_truthy).astype(bool)
    if "status" in frame:
        out |= frame["status"].astype(str).eq("FAILED")
    if "failure_rate" in frame:
        out |= pd.to_numeric(frame["failure_rate"], errors="coerce").fillna(0.0).ge(1.0)
    return out


def usable(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of ``frame`` that are not ``failed_runs``."""
    return frame[~failed_runs(frame)]


def newest_per_label(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest usable run of each label; a label whose runs all failed keeps its newest (drawn as a failure)."""
    if frame.empty:
        return frame.copy()
    ordered = frame.assign(_failed=failed_runs(frame))
    if "start_time" in ordered:
        ordered = ordered.sort_values("start_time", ascending=False, kind="stable", na_position="last")
    ordered = ordered.sort_values("_failed", kind="stable")  # usable first, each group newest first
    return ordered.drop_duplicates("label", keep="first").drop(columns="_failed").reset_index(drop=True)


# Jobs -----------------------------------------------------------------------------------------------------------

_PARSE_ERROR = re.compile(r"AdapterParseError|failed to parse the LM response", re.IGNORECASE)
_FIELDS = re.compile(r"Expected to find output fields in the LM response: \[([^\]]*)\]")
_BREAKER_KIND = re.compile(r"\(last: (\w+):")
REFLECTION_FIELDS = ("proposed_instruction", "new_instruction")  # MIPROv2's proposer, GEPA's instruction proposer


def error_kind(error: str | None) -> FailureKind | None:
    """The failure kind a job's error names (the circuit breaker's "(last: auth: …)", an unparsed answer), or None."""
    if not error:
        return None
    if _PARSE_ERROR.search(error):
        return "parse"
    found = _BREAKER_KIND.search(error)
    return found.group(1) if found and found.group(1) in FAILURE_KINDS else None  # type: ignore[return-value]


def reflection_parse_failure(error: str | None) -> bool:
    """Did the job end because the reflection (proposal) model's answer could not be read as an instruction?"""
    if not error or error_kind(error) != "parse":
        return False
    fields = _FIELDS.search(error)
    return bool(fields and any(f in fields.group(1) for f in REFLECTION_FIELDS))


def job_error_text(error: str | None) -> str:
    """A job's error as a user reads it: a raw ``AdapterParseError`` (a whole LM response and a field list) becomes
    one sentence saying which model wrote what; other errors stay as they are."""
    if not error or error_kind(error) != "parse":
        return error or ""
    fields = _FIELDS.search(error)
    wanted = fields.group(1).strip() if fields else ""
    answer = re.search(r"LM Response: (.*?)\s*\n\s*\n", error, re.DOTALL)
    said = f" It wrote {quote(answer.group(1))}." if answer else ""
    if reflection_parse_failure(error):
        return ("The reflection model's answer could not be read as a new instruction (the field "
                f"{wanted} was missing).{said} Use a stronger instruction-following model for reflection.")
    return (f"A model's answer could not be read: the field{'s' if ',' in wanted else ''} {wanted or 'expected'} "
            f"{'were' if ',' in wanted else 'was'} missing.{said} Check the model and its instruction.")


def resume_can_help(state: str, error: str | None) -> bool:
    """Can resuming a job change its outcome? Yes after an interruption, a cancel, or a provider that may answer
    next time (unreachable, rate limit, timeout, server errors); no when it failed in a way that repeats with the
    same settings (an unreadable answer, a rejected key, an unknown model, bad settings)."""
    if state != "failed":
        return True
    return error_kind(error) not in (*PERMANENT_KINDS, "parse")


def resume_refusal(error: str | None) -> str:
    """Why Resume is not offered for a failed job, and what to do instead."""
    kind = error_kind(error) or "other"
    return (f"Resuming would fail the same way ({_words(kind).short}): change the settings that caused it, then "
            "start a new run.")
