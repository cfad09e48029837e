"""DSPy's response cache, keyed by where a request goes as well as by what it asks.

DSPy 3.4.1 leaves ``api_key``, ``api_base`` and ``base_url`` out of every cache key (``dspy/clients/cache.py``
``request_cache`` and ``dspy/clients/execution.py`` ``IGNORED_CACHE_KEYS``), so two servers that serve the same
model id share answers: a baseline of ``openai/stub-small@A`` then ``@B`` sent B nothing and reported A's answers.

Why a :class:`~dspy.clients.cache.Cache` subclass and not a field of the request: the cache key is computed from
the request DSPy builds, ``{model, messages, **lm.kwargs, **call kwargs}``, which already holds everything of a
catalog entry that decides an answer (model string, base URL, temperature, max_tokens, reasoning effort); only the
base URL is dropped, by DSPy's ignore list. Putting it back where the key is made covers every LM, its
``lm.copy(...)`` (kwargs are copied), and our guard/limit/trace re-classings. The request-field seams are worse:
the only field DSPy strips before the provider call is ``rollout_id``, which BootstrapFewShot, BestOfN, Refine,
SIMBA and MIPROv2's proposer overwrite with their own numbers (and DSPy warns about at temperature 0); any other
unknown field is sent to the provider. The key value stays out of the key (a key never reaches the cache file).
"""

from __future__ import annotations

import os
from typing import Any

from dspy.clients.cache import Cache

ADDRESS_FIELDS = ("api_base", "base_url")


def _address(request: dict[str, Any]) -> str | None:
    """Where the request goes when it names no base URL: the provider's environment gateway, as DSPy's backend
    selection reads it (``<PREFIX>_API_BASE`` / ``<PREFIX>_BASE_URL``), or None for the provider's default."""
    if any(request.get(f) for f in ADDRESS_FIELDS):
        return None
    model = request.get("model")
    if not isinstance(model, str) or "/" not in model:
        return None
    prefix = model.split("/", 1)[0].upper()
    return next((os.environ[n] for n in (f"{prefix}_API_BASE", f"{prefix}_BASE_URL") if os.environ.get(n)), None)


class EndpointCache(Cache):
    """DSPy's two-level cache whose key includes the base URL (never the API key)."""

    def cache_key(self, request: dict[str, Any], ignored_args_for_cache_key: list[str] | None = None) -> str:
        ignored = [name for name in ignored_args_for_cache_key or [] if name not in ADDRESS_FIELDS]
        env_base = _address(request)
        if env_base:
            request = {**request, "api_base": env_base}
        return super().cache_key(request, ignored)


def use_endpoint_cache() -> None:
    """Make ``dspy.cache`` (whatever ``dspy.configure_cache`` last made it) key by endpoint too; idempotent.

    The instance is re-classed in place, not rebuilt: it keeps its memory and disk tiers and settings, and
    :class:`EndpointCache` adds no state of its own, only the key. A later ``dspy.configure_cache`` builds a plain
    Cache again: :func:`core.lm.models.build_lm` calls this for every LM it builds."""
    import dspy

    cache = dspy.cache
    if type(cache) is Cache:
        cache.__class__ = EndpointCache
