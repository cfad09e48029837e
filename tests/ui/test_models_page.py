"""The Models page: a model's timeout and retries are set when it is added and edited afterwards; no key is ever
shown, even when a provider repeats it in its error."""

from __future__ import annotations

import uuid

from streamlit.testing.v1 import AppTest

from core.models import PRESETS, ModelCatalog, ModelSpec, openai_compatible
from tests.stub_server import Faults
from tests.ui.conftest import assert_clean, open_page, texts

PRESET = next(p for p in PRESETS if p.provider == "openai")


def catalog_table(at: AppTest):
    """The catalog table (the page's dataframe with the models' timeouts)."""
    return next(f.value for f in at.dataframe if {"name", "timeout (s)", "retries"} <= set(f.value.columns))


def test_timeout_and_retries_of_a_model_are_edited_and_saved(empty):
    catalog = ModelCatalog.load(empty.catalog_path)
    catalog.add(openai_compatible("local-a", "llama3.1", "http://127.0.0.1:11434/v1", timeout_s=30.0, num_retries=1))
    catalog.add(openai_compatible("local-b", "qwen3", "http://127.0.0.1:11434/v1", timeout_s=240.0, num_retries=4))
    catalog.save()
    at = open_page("pages/models.py")
    at.selectbox(key="models.limits.name").select("local-b").run()
    assert at.number_input(key="models.limits.timeout.local-b").value == 240.0  # its own values, not another's
    assert at.number_input(key="models.limits.retries.local-b").value == 4
    at.selectbox(key="models.limits.name").select("local-a").run()
    assert at.number_input(key="models.limits.timeout.local-a").value == 30.0
    at.number_input(key="models.limits.timeout.local-a").set_value(75.0)
    at.number_input(key="models.limits.retries.local-a").set_value(0)
    at.button(key="models.limits.save").click().run()
    assert_clean(at)
    assert "local-a: timeout 75 s, 0 retries." in texts(at, "success")
    saved = ModelCatalog.load(empty.catalog_path)
    assert (saved.get("local-a").timeout_s, saved.get("local-a").num_retries) == (75.0, 0)
    assert (saved.get("local-b").timeout_s, saved.get("local-b").num_retries) == (240.0, 4)  # untouched
    assert saved.get("local-a").model == "openai/llama3.1"  # everything else kept
    row = catalog_table(at).set_index("name").loc["local-a"]
    assert (row["timeout (s)"], row["retries"]) == (75.0, 0)


def test_a_preset_can_get_its_own_timeout_and_retries(empty):
    at = open_page("pages/models.py")
    at.selectbox(key="models.limits.name").select(PRESET.name).run()
    at.number_input(key=f"models.limits.timeout.{PRESET.name}").set_value(600.0)
    at.number_input(key=f"models.limits.retries.{PRESET.name}").set_value(6)
    at.button(key="models.limits.save").click().run()
    assert_clean(at)
    edited = ModelCatalog.load(empty.catalog_path).get(PRESET.name)
    assert (edited.timeout_s, edited.num_retries) == (600.0, 6) and edited.model == PRESET.model


def test_adding_a_model_sets_its_timeout_and_retries(empty):
    at = open_page("pages/models.py")
    at.text_input(key="models.add.name").input("slow-llama")
    at.text_input(key="models.add.model").input("llama3.1")
    at.number_input(key="models.add.timeout").set_value(400.0)
    at.number_input(key="models.add.retries").set_value(3)
    at.button(key="models.add.submit").click().run()
    assert_clean(at)
    saved = ModelCatalog.load(empty.catalog_path).get("slow-llama")
    assert (saved.timeout_s, saved.num_retries) == (400.0, 3)


def test_a_key_echoed_by_the_provider_is_never_shown(empty, stub, monkeypatch):
    key = f"sk-page-{uuid.uuid4().hex}"
    monkeypatch.setenv("STUB_ACCESS", key)
    stub.faults = Faults(echo_key_401=True)
    catalog = ModelCatalog.load(empty.catalog_path)
    catalog.add(ModelSpec("echo", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_ACCESS"))
    catalog.save()
    at = open_page("pages/models.py")
    at.selectbox(key="models.check.name").select("echo")
    at.button(key="models.check").click().run()
    assert not at.exception
    assert stub.chat_requests()[0]["headers"]["Authorization"] == f"Bearer {key}"  # it went out and came back
    errors = texts(at, "error")
    assert any("Incorrect API key provided: ***" in e for e in errors), errors
    shown = " ".join(texts(at, "error") + texts(at, "caption") + texts(at, "markdown") + texts(at, "success"))
    assert key not in shown and key not in str(at.session_state["models.last_check"])


def _shows_errors_holding_a_key() -> None:
    import os

    from core.errors import StudioError
    from ui.widgets import show_error, studio_errors

    key = os.environ["OPENAI_API_KEY"]
    show_error(StudioError(f"refused: {key}", f"check {key}"))
    with studio_errors():
        raise RuntimeError(f"boom {key}")


def test_error_messages_on_a_page_are_scrubbed(empty, monkeypatch):
    key = f"sk-widget-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    at = AppTest.from_function(_shows_errors_holding_a_key).run()
    assert not at.exception
    assert texts(at, "error") == ["refused: ***", "Something went wrong: RuntimeError: boom ***"]
    assert "check ***" in texts(at, "caption") and key not in " ".join(texts(at, "caption"))
