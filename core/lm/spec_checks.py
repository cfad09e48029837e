"""The checks a model spec passes where it is born (``ModelSpec.__post_init__``): each raises a ModelError that
says what to write instead."""

from __future__ import annotations

import urllib.parse
from typing import Any

from core.config.errors import ModelError
from core.config.settings import PROVIDERS

MAX_TIMEOUT_S = 3600.0
MAX_RETRIES = 10


def check_spec(spec: Any) -> None:
    """Raise a ModelError for the first thing wrong with ``spec`` (a core.lm.models.ModelSpec)."""
    for check in (_names, _base_url, _prices, _call_limits, _rate_limits):
        check(spec)


def _names(spec: Any) -> None:
    if not spec.name.strip():
        raise ModelError("A model needs a display name.", "Give it a short name such as 'gpt-oss-20b'.")
    if "/" not in spec.model or spec.model.endswith("/"):
        raise ModelError(
            f"Model string {spec.model!r} has no provider prefix.",
            "Write it as provider/model, e.g. 'openai/gpt-4o-mini' or 'databricks/databricks-gpt-oss-20b'.",
        )


def _base_url(spec: Any) -> None:
    if spec.provider == "openai-compatible" and not spec.api_base:
        raise ModelError(
            f"{spec.name}: an OpenAI-compatible server needs its base URL.",
            PROVIDERS["openai-compatible"].help,
        )
    if spec.api_base:
        parts = urllib.parse.urlsplit(spec.api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ModelError(f"Base URL {spec.api_base!r} is not an http(s) URL.", "E.g. http://localhost:11434/v1")
        if parts.username or parts.password:
            raise ModelError(
                "The base URL contains credentials.",
                "Remove user:password from the URL and put the key in an environment variable.",
            )


def _prices(spec: Any) -> None:
    for price in (spec.input_price_per_m, spec.output_price_per_m):
        if price is not None and price < 0:
            raise ModelError(f"Price {price} is negative.", "Prices are USD per 1M tokens, 0 or more.")


def _call_limits(spec: Any) -> None:
    """The timeout of one call and its retries."""
    timeout, retries = spec.timeout_s, spec.num_retries
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ModelError(f"{spec.name}: timeout {timeout!r} is not a number of seconds in (0, {MAX_TIMEOUT_S:g}].",
                         "Give the seconds one call may take, e.g. 120 (30 for a fast local server).")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ModelError(f"{spec.name}: retries {retries!r} is not a whole number from 0 to {MAX_RETRIES}.",
                         "Give how many times a call that failed transiently is tried again, e.g. 2 (0: never).")


def _rate_limits(spec: Any) -> None:
    """The provider's requests and tokens per minute for this key."""
    for what, limit in (("requests", spec.rpm), ("tokens", spec.tpm)):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ModelError(f"{spec.name}: {limit!r} {what} per minute is not a whole number of 1 or more.",
                             f"Give the provider's limit of {what} per minute for this key, or leave it empty.")
