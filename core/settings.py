"""One place that reads configuration: environment variables, then ``.streamlit/secrets.toml``.

Environment variables (all optional):

- ``GEPA_STUDIO_DATA_DIR``: where runs, jobs, caches and the model catalog live
  (default ``./.gepa-studio``).
- ``MLFLOW_TRACKING_URI``: the MLflow store (default ``sqlite:///<data dir>/mlflow.db``,
  artifacts under ``<data dir>/mlartifacts``).
- ``GEPA_STUDIO_MAX_JOBS``: how many optimization jobs run at once (default 2).
- ``GEPA_STUDIO_ONLINE_PRICES=1``: let LiteLLM fetch its price map from the internet at import;
  by default the bundled copy is used (the fetch can hang for 5 s or deadlock ``mlflow server``).
- Provider keys (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``DATABRICKS_TOKEN``...) are read
  by name from the environment or from ``secrets.toml``; their values are never stored.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

# Must be set before litellm is imported anywhere (see module docstring).
if os.environ.get("GEPA_STUDIO_ONLINE_PRICES", "").lower() not in ("1", "true", "yes"):
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEFAULT_DATA_DIR = ".gepa-studio"
SECRETS_PATH = Path(".streamlit") / "secrets.toml"

# The credentials the presets know, by environment variable name.
KNOWN_KEY_VARS: dict[str, str] = {
    "OpenAI": "OPENAI_API_KEY",
    "Anthropic": "ANTHROPIC_API_KEY",
    "Databricks": "DATABRICKS_TOKEN",
}


def _secrets(path: Path | None = None) -> dict[str, object]:
    path = path or Path(os.environ.get("GEPA_STUDIO_SECRETS", SECRETS_PATH))
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (FileNotFoundError, IsADirectoryError):
        return {}
    except tomllib.TOMLDecodeError:
        return {}


def get_secret(name: str) -> str | None:
    """The value of a credential or setting, from the environment first, then ``secrets.toml``."""
    value = os.environ.get(name)
    if value:
        return value
    found = _secrets().get(name)
    return str(found) if found not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    """Where things live. Build with :func:`load_settings`."""

    data_dir: Path
    tracking_uri: str
    artifact_root: Path
    max_jobs: int = 2

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def catalog_path(self) -> Path:
        return self.data_dir / "models.json"

    def ensure(self) -> "Settings":
        """Create the data directories; return self."""
        for d in (self.data_dir, self.jobs_dir, self.cache_dir, self.artifact_root):
            d.mkdir(parents=True, exist_ok=True)
        return self


def load_settings(data_dir: str | Path | None = None) -> Settings:
    """Read settings from the environment (and ``secrets.toml``); ``data_dir`` overrides both."""
    root = Path(data_dir or get_secret("GEPA_STUDIO_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().resolve()
    uri = get_secret("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
    max_jobs = int(get_secret("GEPA_STUDIO_MAX_JOBS") or 2)
    return Settings(data_dir=root, tracking_uri=uri, artifact_root=root / "mlartifacts", max_jobs=max(1, max_jobs))


def credential_status() -> dict[str, bool]:
    """For each known provider: is its credential present? (Never the value.)"""
    return {provider: get_secret(var) is not None for provider, var in KNOWN_KEY_VARS.items()}
