"""OpenAI-compatible servers as one declared DSPy provider, so that no call pays DSPy's price lookup.

DSPy 3.4.1's native engine prices every completed call from its bundled price snapshot. For a model the snapshot
does not know (every model a local Ollama / vLLM / llama.cpp server serves as ``openai/<id>``) the lookup scans the
whole map, on every call: 1.36 ms of the 2.54 ms of client CPU a call cost (measured against the stub, 100 calls),
and the studio never reads the figure (it prices calls itself, from the spec: ``core.lm.models.resolve_price``).

DSPy's supported seam is a declared provider (``dspy.lm15.register_provider``): its metadata namespaces say which
snapshot entries may price its models, and a provider that names none is priced at once as "unknown" with no scan.
That is also the truthful statement: a server that speaks OpenAI's wire is not OpenAI, and a local ``gpt-4o-mini``
must not be priced as OpenAI's. So the studio declares one provider, :data:`PROVIDER_ID`, speaking the OpenAI Chat
Completions wire, and builds the ``dspy.LM`` of an ``openai-compatible`` spec as ``openai-compatible/<model id>``
with the spec's own ``api_base`` and key (a declared provider honors both per LM; the declaration's base URL is a
placeholder no call uses). A call the native route cannot carry falls back to LiteLLM at the spec's address, as DSPy
documents for declared providers.

What changes for a user: little. The spec, the catalog, run params and traces keep ``openai/<id>``; DSPy's own model
string (its history, its response-cache key and the name its error messages give the model) reads
``openai-compatible/<id>``, the studio's own word for these servers, so answers cached by an older version are asked
again once.
"""

from __future__ import annotations

import threading
from typing import Any

PROVIDER_ID = "openai-compatible"  # the studio's own name for these specs (ModelSpec.provider)
WIRE_PREFIX = "openai/"  # how an openai-compatible spec names its model (core.lm.models.openai_compatible)
_PLACEHOLDER_BASE = "http://127.0.0.1:9/v1"  # never called: every LM of this provider names its own api_base

_lock = threading.Lock()
_declared = False


def declare() -> None:
    """Declare :data:`PROVIDER_ID` to DSPy, once a process (DSPy binds declarations to LMs built afterwards)."""
    global _declared
    if _declared:
        return
    with _lock:
        if _declared:
            return
        from dspy.lm15 import AccessPolicy, OpenAIChatCompat, ProviderDefinition, register_provider

        access = AccessPolicy(provider=PROVIDER_ID, env_keys=(), base_url=_PLACEHOLDER_BASE)
        register_provider(ProviderDefinition.chat(access, compat=OpenAIChatCompat(),
                                                  note="an OpenAI-compatible server named by its base URL"),
                          metadata_namespaces=())  # no snapshot entry prices these models: no lookup per call
        _declared = True


def dspy_model(spec: Any) -> str:
    """The model string DSPy gets for ``spec``: ``openai-compatible/<id>`` for an OpenAI-compatible server's
    ``openai/<id>`` (declaring the provider first), else the spec's own string."""
    if spec.is_local and spec.api_base and spec.model.startswith(WIRE_PREFIX):
        declare()
        return PROVIDER_ID + "/" + spec.model.removeprefix(WIRE_PREFIX)
    return str(spec.model)
