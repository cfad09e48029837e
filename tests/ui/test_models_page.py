"""The Models page: models are edited after adding (presets only through a copy), a taken name is asked about and never
overwritten silently, the add form starts fresh after an add, messages show where the action was, the user's models
come first, and no key is ever shown, even when a provider repeats it in its error."""

from __future__ import annotations

import uuid

from streamlit.testing.v1 import AppTest

from core.lm.models import PRESETS, ModelCatalog, ModelSpec, openai_compatible
from tests.stub_server import Faults
from tests.ui.conftest import assert_clean, open_page, texts

PRESET = next(p for p in PRESETS if p.provider == "openai")
LOCAL = "http://127.0.0.1:11434/v1"
DEAD = "http://127.0.0.1:9/v1"  # nothing listens: a connection check fails at once


def catalog_tables(at: AppTest) -> list:
    """The catalog's two tables (prices and keys; connections and limits), each as the page shows it."""
    return [next(f.value for f in at.dataframe if {"name", column} <= set(f.value.columns))
            for column in ("input $/1M", "timeout")]


def catalog_table(at: AppTest):
    """Both catalog tables as one frame, in the page's order."""
    prices, links = catalog_tables(at)
    assert list(prices["name"]) == list(links["name"])
    return prices.merge(links, on="name")


def seed(settings, *specs: ModelSpec) -> None:
    catalog = ModelCatalog.load(settings.catalog_path)
    for spec in specs:
        catalog.add(spec, replace=True)
    catalog.save()


def by_section(at: AppTest, kind: str) -> dict[str, list[str]]:
    """Values of the ``kind`` elements (success, warning...) under the subheader they follow, in page order."""
    section, found = "(top)", {}
    for node in at.main:
        if node.type == "subheader":
            section = str(node.value)
        elif node.type == kind:
            found.setdefault(section, []).append(str(node.value))
    return found


def add(at: AppTest, name: str, model: str, **numbers: float) -> AppTest:
    at.text_input(key="models.add.name").input(name)
    at.text_input(key="models.add.model").input(model)
    for key, value in numbers.items():
        at.number_input(key=f"models.add.{key}").set_value(value)
    return at.button(key="models.add.submit").click().run()


def test_price_timeout_and_base_url_are_edited_after_adding(empty):
    seed(empty, openai_compatible("local-a", "llama3.1", LOCAL, timeout_s=30.0, num_retries=1),
         openai_compatible("local-b", "qwen3", LOCAL, timeout_s=240.0, num_retries=4, input_price_per_m=0.5,
                           output_price_per_m=1.5))
    at = open_page("pages/models.py")
    at.selectbox(key="models.edit.pick").select("local-b").run()
    assert at.number_input(key="models.edit.timeout").value == 240.0  # its own values, not another's
    edited = at.number_input(key="models.edit.price_in").value, at.number_input(key="models.edit.retries").value
    assert edited == (0.5, 4)
    at.selectbox(key="models.edit.pick").select("local-a").run()
    assert at.number_input(key="models.edit.timeout").value == 30.0
    assert at.number_input(key="models.edit.price_in").value is None
    at.number_input(key="models.edit.price_in").set_value(0.25)
    at.number_input(key="models.edit.price_out").set_value(2.0)
    at.number_input(key="models.edit.timeout").set_value(75.0)
    at.number_input(key="models.edit.retries").set_value(0)
    at.text_input(key="models.edit.api_base").input("http://127.0.0.1:8000/v1")
    at.button(key="models.edit.save").click().run()
    assert_clean(at)
    assert by_section(at, "success") == {  # next to the form, not at the top of the page
        "Edit a model": ["Saved local-a: $0.25 / $2 per 1M tokens, timeout 75 s, 0 retries, http://127.0.0.1:8000/v1."]}
    saved = ModelCatalog.load(empty.catalog_path)
    a = saved.get("local-a")
    assert (a.input_price_per_m, a.output_price_per_m, a.timeout_s, a.num_retries) == (0.25, 2.0, 75.0, 0)
    assert (a.api_base, a.model) == ("http://127.0.0.1:8000/v1", "openai/llama3.1")  # the rest kept
    assert saved.get("local-b") == ModelCatalog.load(empty.catalog_path).get("local-b")
    assert (saved.get("local-b").timeout_s, saved.get("local-b").input_price_per_m) == (240.0, 0.5)  # untouched
    row = catalog_table(at).set_index("name").loc["local-a"]
    assert (row["input $/1M"], row["output $/1M"], row["price from"], row["timeout"]) == (0.25, 2.0, "user", 75.0)

    at.number_input(key="models.edit.price_in").set_value(None)  # back to "look it up"
    at.text_input(key="models.edit.api_base").input("localhost:8000")  # a bad URL is a message, nothing saved
    at.button(key="models.edit.save").click().run()
    assert not at.exception and any("is not an http(s) URL" in e for e in texts(at, "error"))
    assert ModelCatalog.load(empty.catalog_path).get("local-a") == a


def test_a_renamed_model_keeps_its_roles_and_nothing_else_changes(empty):
    seed(empty, openai_compatible("local-a", "llama3.1", LOCAL), openai_compatible("local-b", "qwen3", LOCAL))
    at = open_page("pages/models.py", {"models.student": "local-a", "models.reflection": PRESET.name,
                                       "models.compare": ["local-b", "local-a"]})
    at.selectbox(key="models.edit.pick").select("local-a").run()
    at.text_input(key="models.edit.name").input("local-z")
    at.button(key="models.edit.save").click().run()
    assert_clean(at)
    assert ModelCatalog.load(empty.catalog_path).own_names() == ["local-b", "local-z"]
    assert at.session_state["models.student"] == "local-z" and at.selectbox(key="models.student.w").value == "local-z"
    assert at.session_state["models.reflection"] == PRESET.name  # not in the role: untouched
    assert at.session_state["models.compare"] == ["local-b", "local-z"]
    assert at.multiselect(key="models.compare.w").value == ["local-b", "local-z"]
    assert at.selectbox(key="models.edit.pick").value == "local-z"  # still editing it, under its new name
    at.text_input(key="models.edit.name").input("local-b")  # a taken name is refused
    at.button(key="models.edit.save").click().run()
    assert any("already in the catalog" in e for e in texts(at, "error"))
    assert ModelCatalog.load(empty.catalog_path).own_names() == ["local-b", "local-z"]


def test_presets_are_read_only_and_copied_to_be_changed(empty):
    at = open_page("pages/models.py", {"models.edit.pick": PRESET.name})
    assert not [w.key for w in list(at.number_input) + list(at.button) if w.key.startswith("models.edit.")
                and w.key != "models.edit.copy"]  # no edit form, no remove
    at.button(key="models.edit.copy").click().run()
    assert_clean(at)
    copy_name = f"{PRESET.name} (copy)"
    assert at.selectbox(key="models.edit.pick").value == copy_name
    copied = f"Copied {PRESET.name} to your models as {copy_name}: edit it here."
    assert by_section(at, "success") == {"Edit a model": [copied]}
    at.number_input(key="models.edit.price_in").set_value(0.1)
    at.number_input(key="models.edit.price_out").set_value(0.3)
    at.button(key="models.edit.save").click().run()
    assert_clean(at)
    saved = ModelCatalog.load(empty.catalog_path)
    assert saved.get(PRESET.name) == PRESET  # the preset itself is unchanged
    assert (saved.get(copy_name).input_price_per_m, saved.get(copy_name).model) == (0.1, PRESET.model)
    assert catalog_table(at)["name"].iloc[0] == copy_name


def test_adding_a_taken_name_asks_and_replaces_only_when_told(empty):
    seed(empty, openai_compatible("dup", "llama3.1", LOCAL, input_price_per_m=1.0, output_price_per_m=1.0))
    at = open_page("pages/models.py")
    add(at, "dup", "qwen3", timeout=50.0)
    assert not at.exception
    assert not [s for s in texts(at, "success") if s.startswith("Added")]
    warning = by_section(at, "warning")["Add a model"]
    assert len(warning) == 1 and "A model named **dup** is already in the catalog (openai/llama3.1" in warning[0]
    assert ModelCatalog.load(empty.catalog_path).get("dup").model == "openai/llama3.1"  # not overwritten
    at.button(key="models.add.cancel").click().run()
    assert not at.warning and ModelCatalog.load(empty.catalog_path).get("dup").model == "openai/llama3.1"

    add(at, "dup", "qwen3", timeout=50.0)
    at.button(key="models.add.replace").click().run()
    assert_clean(at)
    replaced = ModelCatalog.load(empty.catalog_path).get("dup")
    assert (replaced.model, replaced.timeout_s, replaced.input_price_per_m) == ("openai/qwen3", 50.0, None)
    assert by_section(at, "success") == {"Add a model": ["Replaced dup: now openai/qwen3."]} and not at.warning

    add(at, PRESET.name, "llama3.1")  # a preset's name is taken too
    assert ", a preset)" in by_section(at, "warning")["Add a model"][0]
    assert ModelCatalog.load(empty.catalog_path).get(PRESET.name) == PRESET


def test_the_add_form_starts_fresh_after_an_add(empty):
    at = open_page("pages/models.py")
    add(at, "priced", "llama3.1", price_in=3.0, price_out=9.0, timeout=400.0, retries=3)
    assert_clean(at)
    assert by_section(at, "success") == {"Add a model": ["Added priced (openai/llama3.1) to the catalog."]}
    saved = ModelCatalog.load(empty.catalog_path).get("priced")
    assert (saved.input_price_per_m, saved.output_price_per_m, saved.timeout_s, saved.num_retries) == (
        3.0, 9.0, 400.0, 3)
    assert at.text_input(key="models.add.name").value == "" and at.text_input(key="models.add.model").value == ""
    assert at.number_input(key="models.add.price_in").value is None
    assert at.number_input(key="models.add.price_out").value is None
    defaults = at.number_input(key="models.add.timeout").value, at.number_input(key="models.add.retries").value
    assert defaults == (120.0, 2)
    add(at, "unpriced", "qwen3")  # nothing inherited from the last model
    unpriced = ModelCatalog.load(empty.catalog_path).get("unpriced")
    assert (unpriced.input_price_per_m, unpriced.output_price_per_m, unpriced.timeout_s) == (None, None, 120.0)
    at.segmented_control(key="models.add.provider").set_value("openai").run()  # another provider, its own defaults
    assert at.text_input(key="models.add.model").value == "openai/"
    assert at.text_input(key="models.add.key_env").value == "OPENAI_API_KEY"


def test_own_models_come_first_in_short_readable_columns(empty):
    seed(empty, openai_compatible("zz-local", "llama3.1", LOCAL, input_price_per_m=0.123456, output_price_per_m=2.0),
         openai_compatible("aa-local", "qwen3", LOCAL))
    at = open_page("pages/models.py")
    table = catalog_table(at)
    assert list(table["name"][:2]) == ["aa-local", "zz-local"] and list(table["source"][:2]) == ["yours", "yours"]
    assert set(table["source"][2:]) == {"preset"} and len(table) == 2 + len(PRESETS)
    assert all(len(t.columns) <= 6 and all(len(c) <= 12 for c in t.columns) for t in catalog_tables(at))  # fit 1280 px
    assert table.set_index("name").loc["zz-local", "server"] == LOCAL
    assert table.set_index("name").loc[PRESET.name, "server"] == "OpenAI"
    assert at.selectbox(key="models.student.w").options[:2] == ["aa-local", "zz-local"]


def test_a_failed_check_is_cleared_when_its_model_is_removed_or_edited(empty):
    seed(empty, openai_compatible("down", "llama3.1", DEAD), openai_compatible("other", "qwen3", DEAD))
    at = open_page("pages/models.py")
    at.selectbox(key="models.check.name").select("down")
    at.button(key="models.check").click().run()
    assert any(e.startswith("down: unreachable") for e in texts(at, "error"))
    at.selectbox(key="models.edit.pick").select("other").run()
    at.number_input(key="models.edit.timeout").set_value(60.0)
    at.button(key="models.edit.save").click().run()
    assert any(e.startswith("down: unreachable") for e in texts(at, "error"))  # another model's edit: kept
    at.selectbox(key="models.edit.pick").select("down").run()
    at.number_input(key="models.edit.timeout").set_value(60.0)
    at.button(key="models.edit.save").click().run()
    assert_clean(at)
    assert at.session_state["models.last_check"] is None  # edited: the old failure is gone

    at.selectbox(key="models.check.name").select("other")
    at.button(key="models.check").click().run()
    assert any(e.startswith("other: unreachable") for e in texts(at, "error"))
    at.selectbox(key="models.edit.pick").select("other").run()
    at.button(key="models.edit.remove").click().run()
    assert_clean(at)
    assert "other" not in ModelCatalog.load(empty.catalog_path).models
    assert by_section(at, "success") == {"Edit a model": ["Removed other."]} and not at.error


def test_a_key_echoed_by_the_provider_is_never_shown(empty, stub, monkeypatch):
    key = f"sk-page-{uuid.uuid4().hex}"
    monkeypatch.setenv("STUB_ACCESS", key)
    stub.faults = Faults(echo_key_401=True)
    seed(empty, ModelSpec("echo", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_ACCESS"))
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

    from core.config.errors import StudioError
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


def test_rate_limits_are_set_on_add_and_edit_and_shown(empty):
    seed(empty, openai_compatible("limited", "llama3.1", LOCAL, rpm=600, tpm=90_000))
    at = open_page("pages/models.py")
    table = catalog_table(at).set_index("name")
    assert table.loc["limited", "limit / min"] == "600 req · 90k tok"
    assert table.loc[PRESET.name, "limit / min"] == "none"
    add(at, "fresh", "qwen3", rpm=120)
    fresh = ModelCatalog.load(empty.catalog_path).get("fresh")
    assert (fresh.rpm, fresh.tpm) == (120, None)
    at.selectbox(key="models.edit.pick").set_value("limited").run()
    assert (at.number_input(key="models.edit.rpm").value, at.number_input(key="models.edit.tpm").value) == (600, 90_000)
    at.number_input(key="models.edit.rpm").set_value(None)
    at.number_input(key="models.edit.tpm").set_value(2_000_000)
    at.button(key="models.edit.save").click().run()
    saved = ModelCatalog.load(empty.catalog_path).get("limited")
    assert (saved.rpm, saved.tpm) == (None, 2_000_000)
    assert any("at most 2M tok a minute" in m for m in by_section(at, "success")["Edit a model"])
    assert_clean(at)
