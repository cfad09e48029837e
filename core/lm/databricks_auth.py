"""A Databricks serving endpoint's credentials for an LM, and a fresh token for each of its calls.

:func:`connection` is the one place a Databricks LM gets its ``api_key`` and ``api_base``
(:func:`core.lm.models.build_lm` asks it): the spec's key variable (``DATABRICKS_TOKEN``) when it is set, and the SDK
is not asked; else the Databricks SDK's unified auth (:mod:`core.config.databricks`: a profile, OAuth
machine-to-machine, an app's identity). Every value it obtains (the token, a client secret the SDK read from a profile)
is registered with the key scrub (:func:`core.config.secrets.register_secret`) before it goes anywhere. No credentials
at all: a ModelError naming every way to give them, before any call.

Why a DSPy callback refreshes the token. An OAuth token lives about an hour; a GEPA run lasts longer on one LM, built
once. LiteLLM takes the key from the request DSPy builds for each call (``{**lm.kwargs, **call keywords}``), so the
token must be fresh in ``lm.kwargs`` when DSPy builds it. The seams:

- a step of :mod:`core.lm.call`: a step sees the call, not the LM it is made on (``lm.copy()`` makes LMs with kwargs
  of their own that share the steps), and a new step would change the one documented order;
- an ``api_key`` keyword on each call: every DSPy callback gets a call's keywords as its ``inputs`` (MLflow's DSPy
  autolog records them in its spans), while ``api_key`` in ``lm.kwargs`` is left out of those, of DSPy's history,
  its cache key and a saved program;
- DSPy's callback seam, ``on_lm_start(call_id, instance, inputs)``: run in the calling thread (sync or async) just
  before DSPy reads ``instance.kwargs``, on the very LM called; copies keep the callback, each with its own kwargs.

The last one: :class:`TokenRefresh` puts the SDK's current token in ``instance.kwargs["api_key"]``. The SDK's header
factory returns the token it holds until that nears expiry (refreshed in the background once stale, blocking once
expired), so a call costs a lock and a lookup. A refresh that fails is logged and the call goes with the token it
has: a provider's 401 then counts as an auth failure (:mod:`core.lm.breaker`) like any other.

Known, from LiteLLM 1.106 (``litellm/llms/databricks/common_utils.py``, ``databricks_validate_environment``): with
``DATABRICKS_CLIENT_ID`` and ``DATABRICKS_CLIENT_SECRET`` in the environment (on Databricks Apps the platform sets
them), LiteLLM fetches an OAuth token of its own from ``<workspace>/oidc/v1/token`` before every Databricks call,
then sends the ``api_key`` it was given instead: one extra request a call, whatever gave the key.
"""

from __future__ import annotations

import logging
from typing import Any

from dspy.utils.callback import BaseCallback

from core.config.databricks import (
    API_BASE_ENV,
    HELP,
    HOST_ENV,
    bearer,
    sdk_config,
    sensitive_values,
    serving_base,
)
from core.config.errors import ConfigError, ModelError
from core.config.secrets import register_secret, scrub
from core.config.settings import get_secret

logger = logging.getLogger(__name__)


def connection(spec: Any, key: str | None) -> dict[str, Any]:
    """``dspy.LM`` keywords for a Databricks ``spec`` whose key variable holds ``key`` (or nothing): ``api_key``,
    ``api_base`` and, for a token from the SDK, the ``callbacks`` that keep it fresh. ModelError when there are no
    credentials."""
    base = spec.api_base or get_secret(API_BASE_ENV) or serving_base(get_secret(HOST_ENV))
    if key:  # a pasted token wins; without a base URL LiteLLM looks for one as before
        return {"api_key": key, **({"api_base": base} if base else {})}
    missing = f"{spec.api_key_env} is not set and " if spec.api_key_env else ""
    try:
        config = sdk_config(get_secret)
        register_secret(*sensitive_values(config))
        token = bearer(config)
        register_secret(token)
    except ConfigError as exc:
        raise ModelError(f"{spec.name}: {missing}{_lower(exc.message)}", exc.hint) from None
    except Exception as exc:  # noqa: BLE001 - the token request failed (a refused secret, an unreachable workspace)
        raise ModelError(f"{spec.name}: the Databricks SDK could not get a token ({_detail(exc)}).", HELP) from None
    return {"api_key": token, "api_base": base or serving_base(config.host),
            "callbacks": [TokenRefresh(config, spec.name)]}


def _lower(message: str) -> str:
    return message[:1].lower() + message[1:]


def _detail(exc: BaseException) -> str:
    return scrub(" ".join(f"{type(exc).__name__}: {exc}".split()))[:400]


class TokenRefresh(BaseCallback):
    """On a Databricks LM whose token came from the SDK: before each call, the SDK's current token as the LM's
    ``api_key`` (registered with the key scrub first). Shared by the LM's copies, as the SDK config behind it is."""

    def __init__(self, config: Any, label: str) -> None:
        self.config = config
        self.label = label  # the model's display name, for the log
        self._warned = False

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        kwargs = getattr(instance, "kwargs", None)
        if not isinstance(kwargs, dict):
            return
        try:
            if self.config is None:  # unpickled in another process: resolved again there
                self.config = sdk_config(get_secret)
            token = bearer(self.config)
        except Exception as exc:  # noqa: BLE001 - the call goes on with the token it has
            if not self._warned:
                self._warned = True
                logger.warning("%s: the Databricks token could not be refreshed (%s); calls go on with the last one",
                               self.label, _detail(exc))
            return
        self._warned = False
        if kwargs.get("api_key") != token:
            register_secret(token)
            kwargs["api_key"] = token  # replaces a key DSPy's other threads may be copying: no resize, no race

    def __deepcopy__(self, memo: dict[int, Any]) -> "TokenRefresh":
        return self  # a handle on the process's token source, not a copy of it

    def __getstate__(self) -> dict[str, Any]:
        return {"config": None, "label": self.label, "_warned": False}  # the SDK config holds locks and secrets
