"""Where jobs run: one entry per backend. A new executor is one entry here and a class with the
:class:`core.jobs.types.Backend` methods; the registry asks :func:`backend_for` which one the settings name.

- ``local`` (the default): each job is a process on this machine (:mod:`core.jobs.local`);
- ``ray``: each job is a Ray job on the cluster the settings name (``RAY_ADDRESS``; :mod:`core.jobs.ray_backend`).
  Ray is imported only when a cluster is named: without one, nothing here needs Ray installed.
"""

from __future__ import annotations

import importlib
from typing import Any

from core.config.settings import Settings

BACKENDS: dict[str, str] = {
    "local": "core.jobs.local:ProcessBackend",
    "ray": "core.jobs.ray_backend:RayBackend",
}


def backend_name(settings: Settings) -> str:
    """``ray`` when the settings name a cluster, else ``local``."""
    return "ray" if getattr(settings, "ray_address", None) else "local"


def backend_for(settings: Settings, name: str | None = None) -> Any:
    """The backend the settings name (or ``name``), built for them."""
    module, _, cls = BACKENDS[name or backend_name(settings)].partition(":")
    backend_cls = getattr(importlib.import_module(module), cls)
    return backend_cls.for_settings(settings) if hasattr(backend_cls, "for_settings") else backend_cls()
