"""The settings every room shares, read from environment variables, then ``.streamlit/secrets.toml``. Not the
only reader of the environment: ``core/__init__`` sets library defaults before DSPy, LiteLLM and MLflow load, and a
few rooms read their own switches (the Ray backend, the breaker, the limiter, tracing); docs/configuration.md lists
every variable.

Environment variables (all optional):

- ``GEPA_STUDIO_DATA_DIR``: where runs, jobs, caches and the model catalog live
  (default ``./.gepa-studio``).
- ``MLFLOW_TRACKING_URI``: the MLflow store (default ``sqlite:///<data dir>/mlflow.db``,
  artifacts under ``<data dir>/mlartifacts``).
- ``GEPA_STUDIO_MAX_JOBS``: how many optimization jobs run at once (default 2).
- ``RAY_ADDRESS``: a Ray cluster's job-submission address (``http://head:8265``): jobs run there, not as
  local processes (docs/distributed.md). Without it, the address saved on the Home page
  (``<data dir>/cluster.json``) is used; the environment (or ``secrets.toml``) wins.
- ``GEPA_STUDIO_RAY_MAX_JOBS``: how many jobs run at once on a Ray cluster (default 16).
- ``GEPA_STUDIO_EXPERIMENT_ROOT``: where the studio's MLflow experiments live (default ``gepa-studio``: one experiment
  ``gepa-studio/<task>`` per task); a Databricks workspace wants a folder such as ``/Shared/gepa-studio`` or
  ``/Users/<you>/gepa-studio`` (:mod:`core.tracking.experiments`). Without it, the root saved on the Home page
  (``<data dir>/workspace.json``) is used; the environment (or ``secrets.toml``) wins.
- ``GEPA_STUDIO_UC_CATALOG``, ``GEPA_STUDIO_UC_SCHEMA``: the Unity Catalog catalog and schema that registered models
  and prompts go to when the registry is ``databricks-uc`` (:mod:`core.tracking.registry_names`).
- ``GEPA_STUDIO_ONLINE_PRICES=1``: let LiteLLM fetch its price map from the internet at import;
  by default the bundled copy is used (the fetch can hang for 5 s or deadlock ``mlflow server``).
- ``GEPA_STUDIO_TRACES``: ``on`` (default) records every LM call of a run as an MLflow trace; ``off`` records
  none (very large runs, fast local models: see ``core.tracking.tracing``).
- ``GEPA_STUDIO_METRICS_DIR``: the folder the dashboard may load metric functions (``file.py:fn``) from; unset, the
  dashboard offers none (loading a file runs its code, so the operator names the folder, never the browser).
- Provider keys (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``DATABRICKS_TOKEN``...) are read
  by name from the environment or from ``secrets.toml``; their values are never stored.

A malformed secrets file is never read as an empty one: :func:`read_secrets` raises ConfigError naming the file and
line, the CLI refuses to run with it and the Models page shows it; single lookups (:func:`get_secret`) fall back to
the environment alone, so the dashboard still opens to say what is wrong.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from core.config.databricks import HELP as DATABRICKS_HELP
from core.config.databricks import sdk_configured
from core.config.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = ".gepa-studio"
SECRETS_PATH = Path(".streamlit") / "secrets.toml"
CLUSTER_FILE = "cluster.json"  # {"ray_address": "..."}: the cluster saved on the Home page
WORKSPACE_FILE = "workspace.json"  # {"experiment_root": "..."}: where experiments live, saved on the Home page
ROOT_ENV = "GEPA_STUDIO_EXPERIMENT_ROOT"
DEFAULT_EXPERIMENT_ROOT = "gepa-studio"  # experiments gepa-studio/<task>, as every store made before the setting
WORKSPACE_TOPS = ("/Users/", "/Shared/", "/Workspace/")  # where a Databricks workspace keeps experiments
PLAN_FILE = "plan.json"  # a job's stored plan, in its folder under jobs_dir (core.jobs writes it, finish reads it)


@dataclass(frozen=True)
class Provider:
    """A kind of model provider: how people call it, the variable that holds its key, how to set it up."""

    name: str  # ModelSpec.provider
    title: str
    key_env: str | None  # None: no key needed (a local server)
    help: str


# The one provider -> key-variable table (the CLI, the Models and Home pages and the presets read it).
PROVIDERS: dict[str, Provider] = {p.name: p for p in (
    Provider("openai-compatible", "Local / OpenAI-compatible server", None,
             "Give the server's base URL, e.g. http://localhost:11434/v1 (Ollama), http://localhost:8000/v1 (vLLM), "
             "http://localhost:8080/v1 (llama.cpp), http://localhost:1234/v1 (LM Studio)."),
    Provider("databricks", "Databricks", "DATABRICKS_TOKEN", DATABRICKS_HELP),  # or the SDK's (core.config.databricks)
    Provider("openai", "OpenAI", "OPENAI_API_KEY", "Set OPENAI_API_KEY."),
    Provider("anthropic", "Anthropic", "ANTHROPIC_API_KEY", "Set ANTHROPIC_API_KEY."),
)}


def secrets_path() -> Path:
    """The secrets file: ``GEPA_STUDIO_SECRETS``, else ``.streamlit/secrets.toml``."""
    return Path(os.environ.get("GEPA_STUDIO_SECRETS", SECRETS_PATH))


def read_secrets(path: Path | None = None) -> dict[str, object]:
    """The secrets file's table ({} when there is none); ConfigError, naming the file and line, when it is not
    valid TOML (a malformed file must not read as an empty one: every key in it would show as "not set")."""
    path = path or secrets_path()
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        found = re.search(r"at line (\d+)", str(exc))
        where = f"{path}, line {found.group(1)}" if found else str(path)
        raise ConfigError(f"The secrets file {where} is not valid TOML ({exc}): none of its keys or settings are read.",
                          'Fix that line (each entry is NAME = "value"; quote every value), or point '
                          "GEPA_STUDIO_SECRETS at another file.") from None


def secrets_problem(path: Path | None = None) -> ConfigError | None:
    """The error that makes the secrets file unreadable, or None when it is fine (or absent)."""
    try:
        read_secrets(path)
    except ConfigError as exc:
        return exc
    return None


_WARNED: set[str] = set()  # problems already logged by this process (get_secret runs often)


def _secrets(path: Path | None = None) -> dict[str, object]:
    """The secrets file's table; a malformed file reads as {} for single lookups (so the dashboard still opens),
    logged once here and shown by the Models page and the CLI (:func:`secrets_problem`)."""
    try:
        return read_secrets(path)
    except ConfigError as exc:
        if exc.message not in _WARNED:
            _WARNED.add(exc.message)
            logger.error("%s", exc)
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
    ray_address: str | None = None  # a Ray cluster's job-submission address: jobs run there (core.jobs.backends)
    # Where the dashboard may load users' metric functions from (GEPA_STUDIO_METRICS_DIR); None: nowhere.
    metrics_dir: Path | None = None
    # Where the dashboard may run users' own DSPy programs from (GEPA_STUDIO_PROGRAMS_DIR); None: nowhere.
    programs_dir: Path | None = None
    # The folder (or name prefix) of every experiment the studio makes: core.tracking.experiments names them.
    experiment_root: str = DEFAULT_EXPERIMENT_ROOT
    # Unity Catalog's catalog and schema for registered models and prompts (core.tracking.registry_names).
    uc_catalog: str | None = None
    uc_schema: str | None = None

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
    metrics, programs = get_secret("GEPA_STUDIO_METRICS_DIR"), get_secret("GEPA_STUDIO_PROGRAMS_DIR")
    catalog, schema = unity_catalog()
    return Settings(data_dir=root, tracking_uri=uri, artifact_root=root / "mlartifacts", max_jobs=max(1, max_jobs),
                    ray_address=get_secret("RAY_ADDRESS") or saved_cluster(root),
                    metrics_dir=Path(metrics).expanduser().resolve() if metrics else None,
                    programs_dir=Path(programs).expanduser().resolve() if programs else None,
                    experiment_root=experiment_root(root), uc_catalog=catalog, uc_schema=schema)


def experiment_root(data_dir: Path | None = None) -> str:
    """Where experiments live: ``GEPA_STUDIO_EXPERIMENT_ROOT`` (environment or ``secrets.toml``), else the root saved
    on the Home page for ``data_dir``, else ``gepa-studio``. Checked when an experiment is named
    (:func:`check_experiment_root`), not here: a bad value must not keep the dashboard from opening to say so."""
    found = get_secret(ROOT_ENV) or (saved_experiment_root(data_dir) if data_dir else None)
    return found.strip() if found and found.strip() else DEFAULT_EXPERIMENT_ROOT


def unity_catalog() -> tuple[str | None, str | None]:
    """Unity Catalog's (catalog, schema) for registered models and prompts, from ``GEPA_STUDIO_UC_CATALOG`` and
    ``GEPA_STUDIO_UC_SCHEMA``; None where unset."""
    return ((get_secret("GEPA_STUDIO_UC_CATALOG") or "").strip() or None,
            (get_secret("GEPA_STUDIO_UC_SCHEMA") or "").strip() or None)


def _saved(data_dir: Path, file: str, key: str) -> str | None:
    """A value saved on the Home page (``<data dir>/<file>``: ``{key: value}``), or None (none, blank, unreadable)."""
    try:
        found = json.loads((data_dir / file).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return str(found).strip() or None if found else None


def _save(data_dir: Path, file: str, key: str, value: str | None) -> str | None:
    """Save ``value`` as ``<data dir>/<file>``'s ``key`` (None: remove the file); returns it."""
    path = data_dir / file
    if value is None:
        path.unlink(missing_ok=True)
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({key: value}), encoding="utf-8")
    return value


def saved_cluster(data_dir: Path) -> str | None:
    """The Ray address saved on the Home page (``<data dir>/cluster.json``), or None."""
    return _saved(data_dir, CLUSTER_FILE, "ray_address")


def save_cluster(data_dir: Path, address: str | None) -> str | None:
    """Save the Ray cluster's address for this data dir (None or blank: jobs run on this machine); returns it.
    ``RAY_ADDRESS`` in the environment or ``secrets.toml`` still wins over it."""
    address = (address or "").strip().rstrip("/") or None
    if address and not address.startswith(("http://", "https://")):
        raise ConfigError(f"{address!r} is not a Ray job-submission address.",
                          "Give the head's dashboard address, e.g. http://head-node:8265.")
    return _save(data_dir, CLUSTER_FILE, "ray_address", address)


def is_databricks(tracking_uri: str) -> bool:
    """Is this tracking URI a Databricks workspace (``databricks`` or ``databricks://<profile>``)?"""
    return tracking_uri == "databricks" or tracking_uri.startswith("databricks://")


def check_experiment_root(root: str, tracking_uri: str) -> str:
    """``root`` when experiments can live under it on ``tracking_uri``; ConfigError saying what is wrong otherwise.

    Any store: not blank, no space around it, no trailing ``/``, no empty, ``.`` or ``..`` part, no quote, backslash
    or control character. A Databricks workspace: a folder under ``/Users/``, ``/Shared/`` or ``/Workspace/``."""
    hint = (f"Set {ROOT_ENV} (or the Home page's experiment root) to a folder such as /Shared/gepa-studio or "
            f"/Users/<you>/gepa-studio; unset, experiments are named {DEFAULT_EXPERIMENT_ROOT}/<task>.")
    problem = _root_problem(root)
    if problem:
        raise ConfigError(f"The experiment root {root!r} {problem}.", hint)
    if is_databricks(tracking_uri) and not (root.startswith(WORKSPACE_TOPS) and root.count("/") >= 2):
        raise ConfigError(f"The experiment root {root!r} is not a workspace folder, and the Databricks tracking "
                          f"server {tracking_uri!r} keeps experiments only under /Users/<you>/, /Shared/ or "
                          "/Workspace/.", hint)
    return root


def _root_problem(root: str) -> str | None:
    """What makes ``root`` unusable as an experiment name's folder on any store, or None."""
    if not root.strip():
        return "is blank"
    if root != root.strip():
        return "has spaces around it"
    if root.endswith("/"):
        return "ends with /"
    if any(part in ("", ".", "..") for part in root.removeprefix("/").split("/")):
        return "has an empty, . or .. part"
    if any(c in "'\"`\\" or ord(c) < 32 for c in root):
        return "has a quote, backslash or control character"
    return None


def saved_experiment_root(data_dir: Path) -> str | None:
    """The experiment root saved on the Home page (``<data dir>/workspace.json``), or None."""
    return _saved(data_dir, WORKSPACE_FILE, "experiment_root")


def save_experiment_root(data_dir: Path, root: str | None, tracking_uri: str) -> str | None:
    """Save where this data dir's experiments live (None or blank: ``gepa-studio``, the default), checked for
    ``tracking_uri``; returns it. ``GEPA_STUDIO_EXPERIMENT_ROOT`` in the environment or ``secrets.toml`` still wins."""
    root = (root or "").strip()
    root = root.rstrip("/") if root.strip("/") else root
    if root:
        check_experiment_root(root, tracking_uri)
    return _save(data_dir, WORKSPACE_FILE, "experiment_root", root or None)


def credential_status() -> dict[str, bool]:
    """For each provider that needs a key, by name: is its key present? (Never the value.) Databricks' is present too
    when the Databricks SDK finds credentials: a profile, OAuth machine-to-machine, an app's identity."""
    return {p.name: get_secret(p.key_env) is not None or (p.name == "databricks" and sdk_configured(get_secret))
            for p in PROVIDERS.values() if p.key_env}
