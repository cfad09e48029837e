"""Reading ``os.environ`` while another thread (MLflow's telemetry) may set or delete a variable: ``dict(os.environ)``
then fails with a KeyError or RuntimeError. Imports nothing of core (settings, secrets and databricks all use it)."""

from __future__ import annotations

import os


def environ_snapshot() -> dict[str, str]:
    """A copy of ``os.environ`` that tolerates another thread setting or deleting variables meanwhile: the names
    are listed first (again if the environment changed size while they were), then each value is read, and one
    that vanished in between is left out."""
    while True:
        try:
            names = list(os.environ)
            break
        except RuntimeError:  # "dictionary changed size during iteration": list them again
            continue
    found = {name: os.environ.get(name) for name in names}
    return {name: value for name, value in found.items() if value is not None}
