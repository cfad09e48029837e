"""Unity Catalog names for registered models and prompts: with the registry ``databricks-uc`` a name is
``catalog.schema.name`` from GEPA_STUDIO_UC_CATALOG / GEPA_STUDIO_UC_SCHEMA, each level letters, digits and ``_``;
what is missing or breaks the rule is a ConfigError before any MLflow call (every MLflow call the paths could make
fails the test); elsewhere the names are what they always were. No Databricks workspace is reached."""

from __future__ import annotations

import logging
from dataclasses import replace

import mlflow
import pytest

from core.config.errors import ConfigError
from core.config.settings import load_settings
from core.lm.models import openai_compatible
from core.optimize.registered import MadeBy, prompt_name, register_prompt
from core.program.program import make_program
from core.ship.register import export_model, model_name
from core.tasks import Task
from core.tracking import registry_names
from core.tracking.store import RunStore

STUDENT = openai_compatible("gpt-oss.20b", "databricks-gpt-oss-20b", "http://127.0.0.1:9/v1")


@pytest.fixture
def uc(settings, monkeypatch):
    """The settings with the registry ``databricks-uc`` and a catalog and schema."""
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks-uc")
    monkeypatch.setenv("GEPA_STUDIO_UC_CATALOG", "main")
    monkeypatch.setenv("GEPA_STUDIO_UC_SCHEMA", "gepa_studio")
    return load_settings()


@pytest.fixture
def no_mlflow(monkeypatch):
    """Every MLflow call a registration could make fails the test."""
    calls = []

    def refuse(name):
        def call(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"mlflow.{name} was called")
        return call

    for name in ("set_tracking_uri", "register_model"):
        monkeypatch.setattr(mlflow, name, refuse(name))
    for name in ("register_prompt", "load_prompt", "set_prompt_alias"):
        monkeypatch.setattr(mlflow.genai, name, refuse(f"genai.{name}"))
    return calls


def test_off_unity_catalog_the_names_are_unchanged(settings, monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert not registry_names.uses_unity_catalog(settings)
    assert model_name("pubmed rct", "gpt-oss.20b", "optimized", settings) == "pubmed-rct-gpt-oss.20b-optimized"
    assert prompt_name("pubmed", STUDENT, settings) == "pubmed-gpt-oss.20b"
    assert registry_names.check_name(settings, "my-model.v2") == "my-model.v2"
    with pytest.raises(ConfigError, match="not a registry name"):
        registry_names.check_name(settings, "no spaces please")
    server = replace(settings, tracking_uri="http://127.0.0.1:5000")
    assert not registry_names.uses_unity_catalog(server)


@pytest.mark.parametrize(("tracking_uri", "registry", "uc"), [
    ("databricks", None, True),  # MLflow's own default for a workspace
    ("databricks://work", None, True),
    ("databricks", "databricks", False),  # the workspace's own registry, asked for by name
    ("http://127.0.0.1:5000", "databricks-uc", True),
    ("http://127.0.0.1:5000", "databricks-uc://work", True),
    ("http://127.0.0.1:5000", None, False),
])
def test_which_registry_is_unity_catalog(settings, monkeypatch, tracking_uri, registry, uc):
    if registry:
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry)
    else:
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    assert registry_names.uses_unity_catalog(replace(settings, tracking_uri=tracking_uri)) is uc


def test_on_unity_catalog_the_studios_names_have_three_levels(uc):
    made = model_name("pubmed-rct", "gpt-oss.20b", "optimized", uc)
    assert made == "main.gepa_studio.pubmed_rct_gpt_oss_20b_optimized"
    assert prompt_name("pubmed rct", STUDENT, uc) == "main.gepa_studio.pubmed_rct_gpt_oss_20b"
    assert registry_names.check_name(uc, "my_model") == "main.gepa_studio.my_model"
    assert registry_names.check_name(uc, "other.team.my_model") == "other.team.my_model"


@pytest.mark.parametrize("name", ["my-model", "a.b", "a.b.c.d", "main.gepa_studio.my-model", "main..m", "my model"])
def test_a_given_name_that_breaks_unity_catalogs_rule_is_refused(uc, name):
    with pytest.raises(ConfigError, match="not a Unity Catalog registry name") as bad:
        registry_names.check_name(uc, name)
    assert "catalog.schema.name" in bad.value.hint and "letters, digits and _" in bad.value.hint


@pytest.mark.parametrize(("catalog", "schema", "says"), [
    (None, None, "GEPA_STUDIO_UC_CATALOG and GEPA_STUDIO_UC_SCHEMA are not set"),
    ("main", None, "GEPA_STUDIO_UC_SCHEMA is not set"),
    (None, "gepa", "GEPA_STUDIO_UC_CATALOG is not set"),
    ("my-catalog", "gepa", "GEPA_STUDIO_UC_CATALOG='my-catalog' is not a Unity Catalog name"),
])
def test_a_missing_or_bad_catalog_or_schema_names_both_variables(uc, catalog, schema, says):
    where = replace(uc, uc_catalog=catalog, uc_schema=schema)
    for make in (lambda: model_name("t", "s", "p", where), lambda: prompt_name("t", STUDENT, where),
                 lambda: registry_names.check_name(where, "bare_name")):
        with pytest.raises(ConfigError, match=says) as missing:
            make()
        assert "GEPA_STUDIO_UC_CATALOG" in missing.value.hint and "GEPA_STUDIO_UC_SCHEMA" in missing.value.hint


def test_an_export_is_refused_before_any_mlflow_call(uc, monkeypatch, no_mlflow):
    store = RunStore(replace(uc, uc_catalog=None))

    def no_store_call(*args, **kwargs):
        raise AssertionError("the run store was asked")

    monkeypatch.setattr(store.client, "get_run", no_store_call)
    monkeypatch.setattr(store.client, "log_artifacts", no_store_call)
    with pytest.raises(ConfigError, match="GEPA_STUDIO_UC_CATALOG is not set"):
        export_model(store, "any-run")
    with pytest.raises(ConfigError, match="not a Unity Catalog registry name"):
        export_model(RunStore(uc), "any-run", name="my-model")
    assert no_mlflow == []


def test_a_prompt_is_not_registered_and_no_mlflow_call_is_made_without_a_schema(uc, no_mlflow, caplog):
    store = RunStore(replace(uc, uc_schema=None))
    task = Task(name="pubmed", text_column="text", label_column="label", labels=("a", "b"))
    with caplog.at_level(logging.WARNING, logger="core.optimize.registered"):
        uri = register_prompt(store, task, STUDENT, make_program(task), 0.9, MadeBy("some-run"))
    assert uri is None and no_mlflow == []
    assert "GEPA_STUDIO_UC_SCHEMA is not set" in caplog.text and "GEPA_STUDIO_UC_CATALOG" in caplog.text
