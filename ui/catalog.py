"""The Models page's catalog table: one row per model (the user's own first), in short columns that read in full at
1280 px: its price and where it comes from, its key, its server, timeout, retries and rate limits."""

from __future__ import annotations

import pandas as pd

from core.config.settings import PROVIDERS
from core.lm.models import PRESETS, ModelCatalog, ModelSpec, key_present
from ui import cache
from ui.widgets import key_status

PROVIDER_NAMES = {name: p.title for name, p in PROVIDERS.items()}
PRESET_NAMES = {p.name for p in PRESETS}
PRICE_COLUMNS = ["name", "source", "input $/1M", "output $/1M", "price from", "key"]
LINK_COLUMNS = ["name", "model", "server", "timeout", "retries", "limit / min"]


def short_price(price: float | None) -> float | None:
    """A price to 4 significant digits: LiteLLM's map holds float noise such as 2.99999 for 3."""
    return None if price is None else float(f"{price:.4g}")


def limits_text(spec: ModelSpec) -> str:
    """A model's rate limits in a few characters: "600 req · 90k tok" (per minute), or "none"."""
    def short(n: int) -> str:
        return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" if n >= 10_000 else str(n)
    parts = ([f"{short(spec.rpm)} req"] if spec.rpm else []) + ([f"{short(spec.tpm)} tok"] if spec.tpm else [])
    return " · ".join(parts) or "none"


def catalog_frame(catalog: ModelCatalog) -> pd.DataFrame:
    """One row per model, the user's own first."""
    rows = []
    for name in catalog.names():
        spec = catalog.models[name]
        price = cache.price_of(spec.to_dict())
        key_env = spec.api_key_env
        own = catalog.is_own(name)
        rows.append({
            "name": name, "source": ("yours" if name not in PRESET_NAMES else "preset, changed") if own else "preset",
            "input $/1M": short_price(price["input_per_m"]), "output $/1M": short_price(price["output_per_m"]),
            "price from": price["source"], "timeout": spec.timeout_s, "retries": spec.num_retries, "model": spec.model,
            "limit / min": limits_text(spec),
            "server": spec.api_base or PROVIDER_NAMES.get(spec.provider, spec.provider),
            "key": "not needed" if not key_env else f"{key_env}: {key_status(key_present(spec))}",
        })
    return pd.DataFrame(rows)
