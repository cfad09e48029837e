"""Names in MLflow's model and prompt registries, for registered models (:mod:`core.ship.register`) and prompts
(:mod:`core.optimize.registered`) alike.

Off Unity Catalog (a local store, a plain tracking server) a name is flat: letters, digits, ``-``, ``_`` and ``.``,
at most 100 characters, as always. With the registry ``databricks-uc`` (``MLFLOW_REGISTRY_URI``, or MLflow's default
for a Databricks tracking server) a name has three levels, ``catalog.schema.name``: the catalog and schema come from
``GEPA_STUDIO_UC_CATALOG`` and ``GEPA_STUDIO_UC_SCHEMA``, and each level is letters, digits and ``_`` only (a name the
studio makes has its ``-`` and ``.`` turned into ``_``; a name a person gives is refused when it breaks the rule).

Everything here is checked before any MLflow call: nothing reaches a registry with a name it would refuse.
"""

from __future__ import annotations

import os
import re

from core.config.errors import ConfigError
from core.config.settings import Settings, is_databricks

UC_SCHEME = "databricks-uc"
CATALOG_ENV, SCHEMA_ENV = "GEPA_STUDIO_UC_CATALOG", "GEPA_STUDIO_UC_SCHEMA"
FLAT = re.compile(r"[A-Za-z0-9_.-]{1,100}")
UC_PART = re.compile(r"[A-Za-z0-9_]{1,255}")
MAX_MADE = 100  # a name the studio makes, its last level: at most this long


def registry_uri(tracking_uri: str) -> str:
    """The registry MLflow will use: ``MLFLOW_REGISTRY_URI`` when set, else its default for ``tracking_uri``
    (``databricks-uc`` for a Databricks workspace, the tracking store itself otherwise)."""
    explicit = (os.environ.get("MLFLOW_REGISTRY_URI") or "").strip()
    if explicit:
        return explicit
    return UC_SCHEME if is_databricks(tracking_uri) else tracking_uri


def uses_unity_catalog(settings: Settings) -> bool:
    """Does a registered model or prompt go to Unity Catalog (``databricks-uc`` or ``databricks-uc://<profile>``)?"""
    uri = registry_uri(settings.tracking_uri)
    return uri == UC_SCHEME or uri.startswith(UC_SCHEME + "://")


def uc_schema(settings: Settings) -> tuple[str, str]:
    """The (catalog, schema) registered names go to; ConfigError naming both variables when one is unset or breaks
    Unity Catalog's rule."""
    catalog, schema = settings.uc_catalog, settings.uc_schema
    hint = (f"Set {CATALOG_ENV} and {SCHEMA_ENV} (environment or secrets.toml) to a catalog and schema you may "
            f"create models and prompts in, e.g. {CATALOG_ENV}=main {SCHEMA_ENV}=gepa_studio; or point "
            "MLFLOW_REGISTRY_URI at another registry.")
    missing = [name for name, value in ((CATALOG_ENV, catalog), (SCHEMA_ENV, schema)) if not value]
    if missing:
        raise ConfigError(f"The registry is Unity Catalog ({registry_uri(settings.tracking_uri)}), which names "
                          f"models and prompts catalog.schema.name, but {' and '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not set.", hint)
    for what, value in ((CATALOG_ENV, catalog), (SCHEMA_ENV, schema)):
        if not UC_PART.fullmatch(str(value)):
            raise ConfigError(f"{what}={value!r} is not a Unity Catalog name: letters, digits and _ only.", hint)
    return str(catalog), str(schema)


def made_name(settings: Settings, *parts: str) -> str:
    """The registry name the studio makes from ``parts`` (task, student, program kind...): ``a-b-c`` off Unity
    Catalog (characters outside letters, digits, ``- _ .`` become ``-``), ``catalog.schema.a_b_c`` on it (``-``,
    ``.`` and the like become ``_``)."""
    joined = "-".join(parts)
    if not uses_unity_catalog(settings):
        return check_name(settings, re.sub(r"[^A-Za-z0-9_.-]+", "-", joined).strip("-")[:MAX_MADE])
    catalog, schema = uc_schema(settings)
    name = re.sub(r"[^A-Za-z0-9_]+", "_", joined).strip("_")[:MAX_MADE]
    return check_name(settings, f"{catalog}.{schema}.{name}")


def check_name(settings: Settings, name: str) -> str:
    """A name a person gives (or the studio made), as the registry takes it; ConfigError saying the rule otherwise.

    Off Unity Catalog: unchanged, when flat. On Unity Catalog: ``catalog.schema.name`` as given, or a bare ``name``
    put in the settings' catalog and schema; each level letters, digits and ``_``."""
    if not uses_unity_catalog(settings):
        if not FLAT.fullmatch(name):
            raise ConfigError(f"The name {name!r} is not a registry name.", "Use letters, digits, - _ and . only "
                              "(at most 100 characters).")
        return name
    levels = name.split(".")
    rule = ("Unity Catalog names are catalog.schema.name, each part letters, digits and _ only (no - or . inside "
            "a part), e.g. main.gepa_studio.my_classifier; a bare name goes to "
            f"{CATALOG_ENV}.{SCHEMA_ENV}.")
    if len(levels) not in (1, 3) or not all(UC_PART.fullmatch(level) for level in levels):
        raise ConfigError(f"{name!r} is not a Unity Catalog registry name.", rule)
    if len(levels) == 1:
        catalog, schema = uc_schema(settings)
        return f"{catalog}.{schema}.{name}"
    return name


def checked_first(settings: Settings, given: str | None) -> str | None:
    """What a registration checks before any MLflow call: on Unity Catalog, the catalog and schema; the name a person
    gave (None: the studio makes one), returned as the registry takes it."""
    if uses_unity_catalog(settings):
        uc_schema(settings)
    return check_name(settings, given) if given else None
