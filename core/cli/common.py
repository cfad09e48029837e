"""What several commands share: resolving model names, the task arguments, a progress bar per model."""

from __future__ import annotations

import getpass
import sys
import urllib.parse
from dataclasses import replace
from typing import Any, Callable, Sequence

from core.cli.task_args import add_task_args, sample_spec, task_ref
from core.config.errors import ModelError
from core.config.settings import PROVIDERS
from core.lm.models import ModelCatalog, ModelSpec, openai_compatible
from core.optimize.config import COMPONENT_SELECTORS

__all__ = ["add_task_args", "cli_user", "progress_printer", "resolve_models", "sample_spec", "task_ref"]


def resolve_models(names: Sequence[str], catalog: ModelCatalog, api_base: str | None) -> list[ModelSpec]:
    """Catalog names, or inline ``provider/model`` strings. ``name@URL`` (and ``--api-base``, for a name that is not
    a catalog display name) calls exactly that URL: an OpenAI-compatible spec for it, or the catalog's entry of that
    name when it calls the same URL; a catalog entry of that name on another URL is refused, never used instead."""
    specs: list[ModelSpec] = []
    for raw in names:
        name, _, base = raw.partition("@")
        url = base or (api_base if name not in catalog.models else None)
        if url:
            spec = _at_url(raw, name, url, catalog)
        elif name in catalog.models or any(s.model == name for s in catalog.models.values()):
            spec = catalog.get(name)
        elif "/" in name:
            provider = PROVIDERS.get(name.split("/", 1)[0])
            known = provider is not None and provider.key_env is not None
            spec = ModelSpec(name=name, model=name, provider=provider.name if known else "openai-compatible",
                             api_key_env=provider.key_env if known else None)
        else:
            spec = catalog.get(name)  # raises with the list of known models
        if any(s.name == spec.name and s != spec for s in specs):  # openai/m@A and openai/m@B in one command
            spec = replace(spec,
                           name=f"{spec.name} ({urllib.parse.urlsplit(spec.api_base or '').netloc or spec.model})")
        specs.append(spec)
    return specs


def _same_url(a: str | None, b: str | None) -> bool:
    return (a or "").rstrip("/") == (b or "").rstrip("/")


def _at_url(raw: str, name: str, url: str, catalog: ModelCatalog) -> ModelSpec:
    """The model ``name`` on the server at ``url`` (``raw`` is what the user typed, for the error)."""
    model_id = name.split("/", 1)[1] if "/" in name else name
    entry = catalog.models.get(name) or catalog.models.get(model_id)
    if entry is None:
        return openai_compatible(model_id, model_id, url)
    if _same_url(entry.api_base, url):
        return entry
    where = entry.api_base or "its provider's default URL"
    raise ModelError(
        f"{raw!r} asks for the server at {url}, but the catalog's model {entry.name!r} ({entry.model}) calls {where}.",
        f"Use {entry.name!r} without @URL to call the catalog's server, or add the model at {url} to the catalog "
        "under another name (python -m core models add NAME MODEL --api-base URL) and use that name.",
    )


def cli_user() -> str:
    """Who runs the command line (tagged on its runs and jobs as ``studio.started_by``)."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "cli"


def progress_printer() -> Callable[[ModelSpec, int, int, Any], None]:
    """A tqdm bar per model, for ``on_record`` callbacks."""
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_record(spec: ModelSpec, done: int, total: int, rec: Any) -> None:
        bar = bars.get(spec.name)
        if bar is None:
            bar = bars[spec.name] = tqdm(total=total, desc=spec.name[:30], file=sys.stderr, leave=True)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return on_record


def add_gepa_args(p: Any) -> None:
    """How an optimization runs, the same for ``optimize`` and every cell of a ``sweep``."""
    p.add_argument("--minibatch", type=int, default=3, help="reflection minibatch size")
    p.add_argument("--component-selector", choices=list(COMPONENT_SELECTORS), default="round_robin",
                   help="GEPA on a program of several predictors: " + "; ".join(
                       f"{k}: {v}" for k, v in COMPONENT_SELECTORS.items()).replace("%", "%%"))
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--module", choices=["predict", "cot"], default="predict")
    p.add_argument("--feedback", choices=["rule", "judge"], default="rule")
    p.add_argument("--no-merge", action="store_true")
    p.add_argument("--no-cache", action="store_true")
