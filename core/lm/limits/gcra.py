"""The rate limiter's pure core: virtual scheduling (GCRA) of requests and tokens per minute, one bucket per key.

Given the time now, a bucket's state and a call's limits and estimated tokens, :func:`reserve` says how long the call
must wait before it goes, and books it. No clock, no lock, no I/O: the stores (``core.lm.limits.stores``) hold buckets
and call these functions under their own lock or transaction.

- Requests per minute: calls go at least ``60 / rpm`` seconds apart; a call to an idle bucket goes at once.
- Tokens per minute: a call reserves its estimated tokens, which take ``tokens * 60 / tpm`` seconds of the bucket's
  time; a call may go while the tokens booked ahead of it take at most :data:`TOKEN_BURST_S` seconds to pay off (a
  call bigger than that goes when the bucket is idle). :func:`settle` then books the difference with the tokens the
  call really used, so the debt runs on the real count.
- Limits: a bucket keeps the strictest limit a call named in the last :data:`LIMIT_MEMORY_S` seconds, so two models
  sharing a key obey the stricter of their two limits, and a raised limit applies a minute after the last stricter call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

TOKEN_BURST_S = 10.0  # tokens booked ahead that a call may go with: 1/6 of a minute's allowance
LIMIT_MEMORY_S = 60.0  # how long a bucket remembers a stricter limit after the last call that named it
WAIT_EPSILON_S = 0.001  # a wait shorter than this is not counted as a wait


@dataclass
class Bucket:
    """The state of one bucket: its schedule, the limits in force, and what its calls waited."""

    tat_req: float = float("-inf")  # when the next request may go
    tat_tok: float = float("-inf")  # when the tokens booked so far are paid off
    rpm: int | None = None
    rpm_at: float = float("-inf")  # when a call last named this rpm
    tpm: int | None = None
    tpm_at: float = float("-inf")
    calls: int = 0
    waits: int = 0
    waited_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Bucket":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def stats(self) -> dict[str, Any]:
        """What this bucket's calls did: calls, how many waited, seconds waited, the limits in force."""
        return {"calls": self.calls, "waits": self.waits, "waited_s": round(self.waited_s, 3),
                "rpm": self.rpm, "tpm": self.tpm}


def _strictest(current: int | None, current_at: float, named: int | None, now: float) -> tuple[int | None, float]:
    """The limit in force after a call named ``named``: the stricter one, a stale one forgotten."""
    fresh = current is not None and now - current_at <= LIMIT_MEMORY_S
    if named is None:
        return (current, current_at) if fresh else (None, float("-inf"))
    if fresh and current is not None and current < named:
        return current, current_at
    return named, now


def reserve(bucket: Bucket, now: float, rpm: int | None, tpm: int | None, tokens: int = 0) -> float:
    """Book one call of about ``tokens`` tokens at ``now``; returns the seconds it must wait first (0: go now)."""
    bucket.rpm, bucket.rpm_at = _strictest(bucket.rpm, bucket.rpm_at, rpm, now)
    bucket.tpm, bucket.tpm_at = _strictest(bucket.tpm, bucket.tpm_at, tpm, now)
    go = now
    if bucket.rpm:
        go = max(go, bucket.tat_req)
    cost_s = 0.0
    if bucket.tpm:
        cost_s = max(0, tokens) * 60.0 / bucket.tpm
        go = max(go, bucket.tat_tok + min(0.0, cost_s - TOKEN_BURST_S))
        bucket.tat_tok = max(bucket.tat_tok, go) + cost_s
    if bucket.rpm:
        bucket.tat_req = go + 60.0 / bucket.rpm
    delay = go - now
    bucket.calls += 1
    if delay >= WAIT_EPSILON_S:
        bucket.waits += 1
        bucket.waited_s += delay
    return delay


def settle(bucket: Bucket, reserved: int, used: int) -> None:
    """Book the difference between the tokens a call reserved and those it used (more: debt; fewer: credit)."""
    if bucket.tpm and used != reserved:
        bucket.tat_tok += (used - reserved) * 60.0 / bucket.tpm


def achieved_rate(timestamps: list[float], start: float | None = None, end: float | None = None) -> float:
    """Calls per minute among ``timestamps`` (seconds): those in ``[start, end)`` over its length, or, without a
    window, the spacing from the first to the last call (``(n - 1) / (last - first)``). 0.0 when it cannot tell."""
    if start is None or end is None:
        times = sorted(timestamps)
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) * 60.0 / (times[-1] - times[0])
    if end <= start:
        return 0.0
    return sum(start <= t < end for t in timestamps) * 60.0 / (end - start)
