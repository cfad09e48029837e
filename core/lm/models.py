"""Models: a provider-neutral spec, presets, prices, a saved catalog, and building/checking DSPy LMs.

Any provider LiteLLM (and DSPy's native engine) speaks works: Databricks, OpenAI, Anthropic and
any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) given by its base URL.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from core.config.databricks import sdk_configured
from core.config.errors import ModelError, ProviderError
from core.config.secrets import scrub
from core.config.settings import PROVIDERS, get_secret
from core.lm.catalog_file import catalog_lock, read_models, write_models
from core.lm.spec_checks import MAX_RETRIES as MAX_RETRIES  # re-exported: the Models page bounds its inputs by them
from core.lm.spec_checks import MAX_TIMEOUT_S as MAX_TIMEOUT_S
from core.lm.spec_checks import check_spec

logger = logging.getLogger(__name__)

Provider = Literal["databricks", "openai", "anthropic", "openai-compatible"]
PriceSource = Literal["user", "litellm", "local", "unknown"]
OLLAMA_DEFAULT_BASE = "http://127.0.0.1:11434"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to call one model, and nothing secret: the key is named, never held."""

    name: str  # display name, unique in a catalog
    model: str  # LiteLLM-style model string, e.g. "openai/gpt-4o-mini"
    provider: Provider = "openai"
    api_base: str | None = None
    api_key_env: str | None = None  # name of the environment variable (or secrets.toml key) with the key
    # Generation
    temperature: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    timeout_s: float = 120.0  # seconds one call may take
    num_retries: int = 2  # retries of a call that failed transiently (429, 5xx, timeout), with backoff
    # Prices in USD per 1M tokens; None means "look it up" (LiteLLM's map, or 0 for local servers).
    input_price_per_m: float | None = None
    output_price_per_m: float | None = None
    # The provider's limits for this key (None: none); every call of every job on the machine or cluster shares them.
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute

    def __post_init__(self) -> None:
        check_spec(self)  # core.lm.spec_checks: each check raises a ModelError that says what to write instead

    @property
    def is_local(self) -> bool:
        """An OpenAI-compatible server on this machine or network: free unless a price is set."""
        return self.provider == "openai-compatible"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        for name in ("num_retries", "rpm", "tpm"):
            if isinstance(kw.get(name), float) and kw[name].is_integer():
                kw[name] = int(kw[name])  # 2.0 from a JSON or form number
        if kw.get("timeout_s") is None:
            kw.pop("timeout_s", None)
        if kw.get("num_retries") is None:
            kw.pop("num_retries", None)
        return cls(**kw)


@dataclass(frozen=True)
class Price:
    input_per_m: float | None
    output_per_m: float | None
    source: PriceSource

    def cost(self, input_tokens: int, output_tokens: int) -> float | None:
        """USD for these tokens; None when the price is unknown."""
        if self.input_per_m is None or self.output_per_m is None:
            return None
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000


def litellm_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens from LiteLLM's bundled price map, or None."""
    import litellm  # slow import: only when a price is needed

    bare = model.split("/", 1)[1] if "/" in model else model
    for key in (model, bare):
        entry = litellm.model_cost.get(key)
        if entry and entry.get("input_cost_per_token") is not None:
            return (
                round(entry["input_cost_per_token"] * 1_000_000, 6),
                round(float(entry.get("output_cost_per_token") or 0.0) * 1_000_000, 6),
            )
    return None


def resolve_price(spec: ModelSpec) -> Price:
    """The price used for cost accounting: the user's, else LiteLLM's, else 0 for local servers."""
    if spec.input_price_per_m is not None and spec.output_price_per_m is not None:
        return Price(spec.input_price_per_m, spec.output_price_per_m, "user")
    if spec.is_local:
        return Price(spec.input_price_per_m or 0.0, spec.output_price_per_m or 0.0, "local")
    found = litellm_price(spec.model)
    if found:
        return Price(
            spec.input_price_per_m if spec.input_price_per_m is not None else found[0],
            spec.output_price_per_m if spec.output_price_per_m is not None else found[1],
            "litellm",
        )
    return Price(spec.input_price_per_m, spec.output_price_per_m, "unknown")


# Presets -------------------------------------------------------------------------------------


def _preset(name: str, model: str, provider: str, **kw: Any) -> ModelSpec:
    return ModelSpec(name, model, provider, api_key_env=PROVIDERS[provider].key_env, **kw)


PRESETS: tuple[ModelSpec, ...] = (
    _preset("gpt-oss-20b (Databricks)", "databricks/databricks-gpt-oss-20b", "databricks"),
    _preset("gpt-oss-120b (Databricks)", "databricks/databricks-gpt-oss-120b", "databricks"),
    _preset("claude-sonnet-4 (Databricks)", "databricks/databricks-claude-sonnet-4", "databricks"),
    _preset("claude-sonnet-4-5 (Databricks)", "databricks/databricks-claude-sonnet-4-5", "databricks"),
    _preset("gpt-4o-mini", "openai/gpt-4o-mini", "openai"),
    _preset("gpt-4.1-mini", "openai/gpt-4.1-mini", "openai"),
    _preset("gpt-5-mini", "openai/gpt-5-mini", "openai", temperature=1.0, max_tokens=16000),
    _preset("claude-haiku-4-5", "anthropic/claude-haiku-4-5", "anthropic"),
    _preset("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5", "anthropic"),
)

PROVIDER_HELP: dict[str, str] = {name: p.help for name, p in PROVIDERS.items()}


def openai_compatible(name: str, model_id: str, api_base: str, **kw: Any) -> ModelSpec:
    """A spec for a model on any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio)."""
    return ModelSpec(name=name, model=f"openai/{model_id}", provider="openai-compatible", api_base=api_base, **kw)


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # a user-given http URL
        return json.loads(resp.read().decode("utf-8"))


def list_server_models(api_base: str, timeout: float = 2.0) -> list[str]:
    """Model ids an OpenAI-compatible server offers (``GET <api_base>/models``)."""
    try:
        data = _get_json(api_base.rstrip("/") + "/models", timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ProviderError(f"Could not list models at {api_base}: {exc}", "Is the server running?",
                            "unreachable") from exc
    return sorted(str(m.get("id")) for m in data.get("data", []) if m.get("id"))


def detect_ollama(base: str = OLLAMA_DEFAULT_BASE, timeout: float = 0.5) -> list[ModelSpec]:
    """Specs for the models of a running Ollama (``GET /api/tags``); [] when none answers."""
    try:
        data = _get_json(base.rstrip("/") + "/api/tags", timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return []
    names = sorted(str(m.get("name") or m.get("model")) for m in data.get("models", []))
    return [openai_compatible(f"{n} (Ollama)", n, base.rstrip("/") + "/v1") for n in names if n]


# Catalog -------------------------------------------------------------------------------------


@dataclass
class ModelCatalog:
    """The user's models (presets plus their own), saved as JSON in the data dir, without secrets.

    Presets are read-only: a user's model may take a preset's name (it then overrides the preset until removed),
    and ``copy`` makes an editable copy of one under a new name. Change it through ``add``, ``update``, ``copy`` and
    ``remove``: ``save`` replays those changes on the file as it is then (core.lm.catalog_file), keeping what others
    saved.
    """

    path: Path
    models: dict[str, ModelSpec] = field(default_factory=dict)
    _changes: dict[str, ModelSpec | None] = field(default_factory=dict, repr=False, compare=False)  # None: removed

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._changes.update({n: s for n, s in self.models.items() if s not in PRESETS})  # given, not loaded

    @classmethod
    def load(cls, path: Path) -> "ModelCatalog":
        catalog = cls(path=Path(path), models={m.name: m for m in PRESETS})
        for item in read_models(catalog.path):
            spec = ModelSpec.from_dict(item)
            catalog.models[spec.name] = spec
        return catalog

    def save(self) -> None:
        """Under the catalog's file lock: re-read the file, apply this catalog's changes, write it; this catalog then
        holds what was written (a model another process saved meanwhile included)."""
        with catalog_lock(self.path):
            fresh = ModelCatalog.load(self.path)
            for name, spec in self._changes.items():
                if spec is None:
                    fresh.remove(name)
                else:
                    fresh.models[name] = spec
            write_models(self.path, [fresh.models[name].to_dict() for name in fresh.own_names()])
        self.models, self._changes = fresh.models, {}

    def add(self, spec: ModelSpec, *, replace: bool = False) -> None:
        """Add ``spec``; a name already in the catalog is refused unless ``replace`` says to overwrite it."""
        if not replace and spec.name in self.models:
            raise ModelError(f"A model named {spec.name!r} is already in the catalog ({self.models[spec.name].model}).",
                             "Give the new model another name, or remove the existing one first (the Models page "
                             "offers to replace it).")
        self.models[spec.name] = self._changes[spec.name] = spec

    def update(self, name: str, /, **changes: Any) -> ModelSpec:
        """Change the user's model ``name`` (price, timeout, base URL, even its ``name=``); returns the new spec.

        The changed spec checks itself like a new one; presets are read-only (``copy`` one first)."""
        current = self.get(name)
        if not self.is_own(current.name):
            raise ModelError(f"{current.name} is a preset, and presets are read-only.",
                             "Copy it to your models and edit the copy.")
        spec = replace(current, **changes)
        if spec.name != current.name and spec.name in self.models:
            raise ModelError(f"A model named {spec.name!r} is already in the catalog.", "Choose another name.")
        self.remove(current.name)
        self.models[spec.name] = self._changes[spec.name] = spec
        return spec

    def copy(self, name: str) -> ModelSpec:
        """Add an editable copy of model ``name`` (a preset, say) under a free name such as ``"<name> (copy)"``."""
        spec = self.get(name)
        new, n = f"{spec.name} (copy)", 2
        while new in self.models:
            new, n = f"{spec.name} (copy {n})", n + 1
        self.models[new] = self._changes[new] = replace(spec, name=new)
        return self.models[new]

    def remove(self, name: str) -> None:
        """Forget the user's model ``name``; a preset it overrode comes back, and presets themselves stay."""
        self.models.pop(name, None)
        self._changes[name] = None
        preset = next((p for p in PRESETS if p.name == name), None)
        if preset is not None:
            self.models[name] = preset

    def get(self, name: str) -> ModelSpec:
        """The spec named ``name`` (display name or model string)."""
        if name in self.models:
            return self.models[name]
        for spec in self.models.values():
            if spec.model == name:
                return spec
        raise ModelError(
            f"Unknown model {name!r}.",
            "Known models: " + ", ".join(sorted(self.models)) + ". Add it on the Models page or with a full spec.",
        )

    def is_own(self, name: str) -> bool:
        """Is ``name`` one of the user's models (added, or a preset they changed), rather than a preset?"""
        return self.models[name] not in PRESETS

    def own_names(self) -> list[str]:
        return sorted(name for name in self.models if self.is_own(name))

    def names(self) -> list[str]:
        """Every model's name: the user's own first, then the presets, each sorted."""
        own = self.own_names()
        return own + sorted(set(self.models) - set(own))


# Building and checking -----------------------------------------------------------------------


def api_key_for(spec: ModelSpec) -> str | None:
    """The key value, read at call time from the environment or secrets.toml (never stored)."""
    if spec.api_key_env:
        return get_secret(spec.api_key_env)
    return None


def key_present(spec: ModelSpec) -> bool:
    """Will a call of ``spec`` find credentials? Its key variable is set, or it needs none, or (Databricks) the
    Databricks SDK finds some (core.config.databricks). Never the value."""
    if spec.provider == "databricks":
        return bool(api_key_for(spec)) or sdk_configured(get_secret)
    return not spec.api_key_env or spec.is_local or bool(api_key_for(spec))


def _connection(spec: ModelSpec) -> dict[str, Any]:
    """The spec's ``api_key`` and ``api_base`` for ``dspy.LM`` (a Databricks model's from core.lm.databricks_auth, the
    one place that resolves them). Raises ModelError when its key is missing."""
    key = api_key_for(spec)
    if spec.provider == "databricks":
        from core.lm.databricks_auth import connection

        return connection(spec, key)
    if spec.api_key_env and not key and not spec.is_local:
        raise ModelError(
            f"{spec.name}: the key variable {spec.api_key_env} is not set.",
            PROVIDER_HELP.get(spec.provider, f"Set {spec.api_key_env}."),
        )
    kwargs: dict[str, Any] = {}
    if key:
        kwargs["api_key"] = key
    elif spec.is_local:
        kwargs["api_key"] = "not-needed"  # most local servers ignore it, but clients insist on one
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    return kwargs


def build_lm(spec: ModelSpec, *, cache: bool = True) -> Any:
    """A ``dspy.LM`` for this spec. Raises ModelError when its key is missing (a Databricks model: when neither its
    key nor the Databricks SDK gives credentials)."""
    import dspy

    kwargs = _connection(spec)
    kwargs.update({k: v for k, v in (("temperature", spec.temperature), ("max_tokens", spec.max_tokens),
                                     ("reasoning_effort", spec.reasoning_effort or None)) if v is not None})
    if cache:
        from core.lm.cache import use_endpoint_cache  # two servers with one model id never share an answer

        use_endpoint_cache()
    from core.lm.server_provider import dspy_model  # a local server: no per-call price lookup in DSPy

    lm = dspy.LM(dspy_model(spec), cache=cache, num_retries=spec.num_retries, timeout=spec.timeout_s, **kwargs)
    from core.lm.limits.lm import limit_lm  # steps of its calls (core.lm.call orders them): the shared rate limit
    from core.lm.limits.slots import gate_lm  # and a free slot of a local server, timed apart from the call

    return gate_lm(limit_lm(lm, spec), spec)


def classify_error(exc: BaseException) -> tuple[str, str]:
    """(kind, hint) for an exception from a provider call. The kind is :func:`core.lm.breaker.classify_failure`'s
    (one classifier for checks, evaluations, optimizations and serving); this adds the hint."""
    from core.lm.breaker import HINTS, classify_failure

    kind = classify_failure(exc)
    return kind, HINTS.get(kind, "")


def redact(text: str, spec: ModelSpec | None = None) -> str:
    """Remove every configured key value (and the spec's own key) from a message before it is shown or stored."""
    return scrub(text, [api_key_for(spec)] if spec else ())


@dataclass(frozen=True)
class ConnectionResult:
    ok: bool
    latency_s: float
    sample: str = ""
    kind: str = ""  # error kind when not ok
    message: str = ""
    hint: str = ""


def check_connection(spec: ModelSpec, timeout_s: float = 30.0) -> ConnectionResult:
    """Send one tiny uncached request; report latency and a sample answer, or what kind of failure it was."""
    start = time.perf_counter()
    try:
        lm = build_lm(replace(spec, timeout_s=timeout_s, num_retries=0), cache=False)
        out = lm("Reply with the single word OK.")
        sample = out[0] if isinstance(out, list) and out else str(out)
        if isinstance(sample, dict):
            sample = str(sample.get("text", sample))
        return ConnectionResult(True, time.perf_counter() - start, sample=str(sample)[:200])
    except ModelError as exc:
        return ConnectionResult(False, time.perf_counter() - start, kind="config", message=exc.message, hint=exc.hint)
    except Exception as exc:  # noqa: BLE001 - every provider failure becomes a result
        kind, hint = classify_error(exc)
        message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, spec)
        return ConnectionResult(False, time.perf_counter() - start, kind=kind, message=message, hint=hint)
