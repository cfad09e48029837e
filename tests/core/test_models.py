import json
import os
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.config.errors import ModelError
from core.lm.models import (
    PRESETS,
    ModelCatalog,
    ModelSpec,
    build_lm,
    check_connection,
    detect_ollama,
    list_server_models,
    openai_compatible,
    resolve_price,
)
from tests.stub_server import Faults

ROOT = Path(__file__).resolve().parents[2]


def test_spec_validation_messages():
    with pytest.raises(ModelError, match="no provider prefix"):
        ModelSpec("x", "gpt-4o-mini")
    with pytest.raises(ModelError, match="not an http"):
        ModelSpec("x", "openai/m", api_base="localhost:11434")
    with pytest.raises(ModelError, match="contains credentials"):
        ModelSpec("x", "openai/m", api_base="http://user:pw@host/v1")
    with pytest.raises(ModelError, match="negative"):
        ModelSpec("x", "openai/m", input_price_per_m=-1)
    for bad in (0, -5, 10_000, "60", True):
        with pytest.raises(ModelError, match="timeout") as err:
            ModelSpec("x", "openai/m", timeout_s=bad)
        assert "seconds" in err.value.hint
    for bad in (-1, 11, 1.5, "2", True):
        with pytest.raises(ModelError, match="retries") as err:
            ModelSpec("x", "openai/m", num_retries=bad)
        assert "tried again" in err.value.hint


def test_prices_from_litellm_user_and_local():
    oss = next(p for p in PRESETS if p.model == "databricks/databricks-gpt-oss-20b")
    price = resolve_price(oss)
    assert price.source == "litellm"
    assert price.input_per_m == pytest.approx(0.07)
    assert price.output_per_m == pytest.approx(0.3, rel=1e-3)
    user = ModelSpec("x", "openai/gpt-4o-mini", input_price_per_m=1.0, output_price_per_m=2.0)
    assert resolve_price(user).source == "user"
    assert resolve_price(user).cost(1_000_000, 500_000) == pytest.approx(2.0)
    local = openai_compatible("llama", "llama3.1", "http://127.0.0.1:11434/v1")
    assert resolve_price(local).source == "local" and resolve_price(local).cost(10**6, 10**6) == 0.0
    unknown = ModelSpec("x", "openai/some-model-nobody-prices", provider="openai")
    assert resolve_price(unknown).source == "unknown" and resolve_price(unknown).cost(10, 10) is None


def test_catalog_roundtrip_has_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-planted-secret-123")
    cat = ModelCatalog.load(tmp_path / "models.json")
    assert {p.name for p in PRESETS} <= set(cat.names())
    spec = ModelSpec("mine", "openai/gpt-4o-mini", api_key_env="MY_KEY", input_price_per_m=0.5, output_price_per_m=1.5)
    cat.add(spec)
    cat.save()
    text = (tmp_path / "models.json").read_text()
    assert "sk-planted-secret-123" not in text and "MY_KEY" in text
    again = ModelCatalog.load(tmp_path / "models.json")
    assert again.get("mine") == spec
    assert again.get("openai/gpt-4o-mini").name in ("mine", "gpt-4o-mini")
    with pytest.raises(ModelError, match="Unknown model 'nope'"):
        again.get("nope")
    assert json.loads(text)["models"][0]["name"] == "mine"  # presets are not duplicated into the file


def test_timeout_and_retries_round_trip_through_the_catalog(tmp_path):
    cat = ModelCatalog.load(tmp_path / "models.json")
    cat.add(openai_compatible("slow-local", "llama3.1", "http://127.0.0.1:11434/v1", timeout_s=45.5, num_retries=0))
    preset = next(p for p in PRESETS if p.provider == "openai")
    # a preset, changed
    cat.add(ModelSpec.from_dict({**preset.to_dict(), "timeout_s": 300, "num_retries": 5.0}), replace=True)
    cat.save()
    saved = {m["name"]: m for m in json.loads((tmp_path / "models.json").read_text())["models"]}
    assert (saved["slow-local"]["timeout_s"], saved["slow-local"]["num_retries"]) == (45.5, 0)
    again = ModelCatalog.load(tmp_path / "models.json")
    assert (again.get("slow-local").timeout_s, again.get("slow-local").num_retries) == (45.5, 0)
    assert (again.get(preset.name).timeout_s, again.get(preset.name).num_retries) == (300, 5)
    old_file = {"models": [{"name": "old", "model": "openai/m", "timeout_s": None}]}  # a catalog from before
    (tmp_path / "old.json").write_text(json.dumps(old_file))
    old = ModelCatalog.load(tmp_path / "old.json").get("old")
    assert (old.timeout_s, old.num_retries) == (ModelSpec("o", "openai/m").timeout_s,
                                                ModelSpec("o", "openai/m").num_retries)


def test_a_taken_name_is_refused_unless_replaced(tmp_path):
    cat = ModelCatalog.load(tmp_path / "models.json")
    first = openai_compatible("mine", "llama3.1", "http://127.0.0.1:11434/v1")
    cat.add(first)
    for taken in ("mine", PRESETS[0].name):
        with pytest.raises(ModelError, match=f"'{re.escape(taken)}' is already in the catalog") as err:
            cat.add(openai_compatible(taken, "qwen3", "http://127.0.0.1:11434/v1"))
        assert "another name" in err.value.hint
    assert cat.get("mine") == first and cat.get(PRESETS[0].name) == PRESETS[0]
    cat.add(openai_compatible("mine", "qwen3", "http://127.0.0.1:11434/v1"), replace=True)
    assert cat.get("mine").model == "openai/qwen3"


def test_update_changes_a_model_checked_like_an_add(tmp_path):
    cat = ModelCatalog.load(tmp_path / "models.json")
    cat.add(openai_compatible("a", "llama3.1", "http://127.0.0.1:11434/v1", temperature=0.3))
    cat.add(openai_compatible("b", "qwen3", "http://127.0.0.1:11434/v1"))
    spec = cat.update("a", input_price_per_m=0.2, output_price_per_m=0.8, timeout_s=45.0,
                      api_base="http://127.0.0.1:8000/v1")
    assert (spec.input_price_per_m, spec.timeout_s, spec.api_base, spec.temperature) == (0.2, 45.0,
                                                                                        "http://127.0.0.1:8000/v1", 0.3)
    assert resolve_price(spec).cost(10**6, 10**6) == pytest.approx(1.0)
    for bad, match in (({"input_price_per_m": -1.0}, "negative"), ({"api_base": "localhost:8000"}, "not an http"),
                       ({"api_base": None}, "needs its base URL"), ({"timeout_s": 0}, "timeout"),
                       ({"name": " "}, "display name"), ({"name": "b"}, "'b' is already in the catalog"),
                       ({"name": PRESETS[0].name}, "already in the catalog")):
        with pytest.raises(ModelError, match=match):
            cat.update("a", **bad)
    assert cat.get("a") == spec and cat.own_names() == ["a", "b"]  # a refused change leaves the catalog as it was
    renamed = cat.update("a", name="c")
    assert cat.own_names() == ["b", "c"] and renamed == replace(spec, name="c")
    with pytest.raises(ModelError, match="is a preset, and presets are read-only") as err:
        cat.update(PRESETS[0].name, timeout_s=10.0)
    assert "Copy it" in err.value.hint and cat.get(PRESETS[0].name) == PRESETS[0]
    with pytest.raises(ModelError, match="Unknown model 'gone'"):
        cat.update("gone", timeout_s=10.0)
    cat.save()
    again = ModelCatalog.load(tmp_path / "models.json")
    assert again.get("c") == renamed and "a" not in again.models


def test_presets_are_copied_to_be_changed_and_come_back_when_an_override_is_removed(tmp_path):
    cat = ModelCatalog.load(tmp_path / "models.json")
    preset = PRESETS[0]
    first, second = cat.copy(preset.name), cat.copy(preset.name)
    assert (first.name, second.name) == (f"{preset.name} (copy)", f"{preset.name} (copy 2)")
    assert replace(first, name=preset.name) == preset and cat.is_own(first.name) and not cat.is_own(preset.name)
    cat.update(first.name, input_price_per_m=1.0, output_price_per_m=4.0)
    cat.add(replace(preset, timeout_s=600.0), replace=True)  # an override of the preset (a catalog from before)
    assert cat.is_own(preset.name) and cat.update(preset.name, num_retries=5).num_retries == 5
    assert cat.names()[:3] == sorted([preset.name, first.name, second.name])  # the user's models first
    assert cat.names()[3:] == sorted(p.name for p in PRESETS[1:])
    cat.save()
    again = ModelCatalog.load(tmp_path / "models.json")
    assert again.get(first.name).input_price_per_m == 1.0 and again.get(preset.name).timeout_s == 600.0
    again.remove(preset.name)  # the override goes, the preset comes back; a preset itself cannot be removed
    again.remove(PRESETS[1].name)
    assert again.get(preset.name) == preset and again.get(PRESETS[1].name) == PRESETS[1]
    again.save()
    assert ModelCatalog.load(tmp_path / "models.json").own_names() == sorted([first.name, second.name])


def test_the_lm_uses_the_models_retries_and_timeout(stub):
    stub.faults = Faults(rate_limit=1.0, retry_after_s=0.05)  # every call: 429, retry after 50 ms
    for retries in (0, 2):
        stub.reset()
        lm = build_lm(openai_compatible("s", "stub-small", stub.base_url, num_retries=retries), cache=False)
        with pytest.raises(Exception, match="(?i)rate limit"):
            lm("hello")
        assert len(stub.chat_requests()) == retries + 1
    stub.faults = Faults(slow_s=1.0)
    started = time.perf_counter()
    with pytest.raises(Exception, match="(?i)time"):
        build_lm(openai_compatible("s", "stub-small", stub.base_url, timeout_s=0.2, num_retries=0), cache=False)("hi")
    assert time.perf_counter() - started < 0.9
    assert "target" in build_lm(openai_compatible("s", "stub-small", stub.base_url, timeout_s=5), cache=False)("hi")[0]


def test_a_local_server_call_pays_no_price_lookup_in_dspy(stub, monkeypatch):
    """DSPy prices every call from its snapshot, scanning all of it for a model it does not know; the studio never
    reads that figure. A local server's LM is a declared provider with no price namespaces: DSPy's lookup is never
    entered, the call still goes to the spec's own server, and a hosted model keeps its own model string."""
    import dspy.clients.model_metadata as metadata

    looked: list[tuple] = []
    real = metadata.model_info
    monkeypatch.setattr(metadata, "model_info", lambda *a, **k: looked.append(a) or real(*a, **k))
    lm = build_lm(openai_compatible("s", "stub-small", stub.base_url), cache=False)
    assert "target" in lm("hello")[0] and len(stub.chat_requests()) == 1
    assert looked == [] and lm.history[-1]["cost"] is None
    assert lm.model == "openai-compatible/stub-small"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    assert build_lm(next(p for p in PRESETS if p.model == "openai/gpt-4o-mini"), cache=False).model == (
        "openai/gpt-4o-mini")


@pytest.mark.slow
def test_models_add_sets_timeout_and_retries_from_the_cli(settings):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "core", "models", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)

    out = cli("add", "my-llama", "openai/llama3.1", "--api-base", "http://127.0.0.1:11434/v1", "--timeout", "30",
              "--retries", "4")
    assert out.returncode == 0, out.stderr
    assert "timeout 30 s, 4 retries" in out.stdout
    spec = ModelCatalog.load(settings.catalog_path).get("my-llama")
    assert (spec.timeout_s, spec.num_retries) == (30.0, 4)
    taken = cli("add", "my-llama", "openai/llama3.1", "--api-base", "http://127.0.0.1:11434/v1", "--retries", "0")
    # never overwritten silently
    assert taken.returncode == 2 and "'my-llama' is already in the catalog" in taken.stderr
    assert ModelCatalog.load(settings.catalog_path).get("my-llama").num_retries == 4
    bad = cli("add", "other-llama", "openai/llama3.1", "--api-base", "http://127.0.0.1:11434/v1", "--timeout", "-3")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "timeout -3.0" in bad.stderr
    assert "other-llama" not in ModelCatalog.load(settings.catalog_path).models


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("GEPA_STUDIO_SECRETS", "/nonexistent/secrets.toml")
    with pytest.raises(ModelError, match="OPENAI_API_KEY is not set"):
        build_lm(next(p for p in PRESETS if p.provider == "openai"))


def test_check_connection_ok_and_each_failure_kind(stub, monkeypatch):
    ok = check_connection(openai_compatible("s", "stub-small", stub.base_url))
    assert ok.ok and ok.latency_s > 0 and "target" in ok.sample
    missing = check_connection(openai_compatible("s", "no-such-model", stub.base_url))
    assert not missing.ok and missing.kind == "not_found"
    down = check_connection(openai_compatible("s", "stub-small", "http://127.0.0.1:9/v1"))
    assert not down.ok and down.kind == "unreachable"
    monkeypatch.setenv("STUB_KEY", "sk-wrong-key-456")
    stub.api_key = "sk-right"
    auth = check_connection(ModelSpec("s", "openai/stub-small", "openai", api_base=stub.base_url,
                                      api_key_env="STUB_KEY"))
    assert not auth.ok and auth.kind == "auth"
    assert "sk-wrong-key-456" not in auth.message
    stub.api_key = None
    stub.faults = Faults(echo_key_401=True)  # a provider that repeats the key in its 401: the message must not
    echoed = check_connection(ModelSpec("s", "openai/stub-small", "openai", api_base=stub.base_url,
                                        api_key_env="STUB_KEY"))
    assert not echoed.ok and echoed.kind == "auth"
    assert "sk-wrong-key-456" not in echoed.message and "Incorrect API key provided: ***" in echoed.message
    stub.faults = None
    stub.latency_s = 1.5
    slow = check_connection(openai_compatible("s", "stub-small", stub.base_url), timeout_s=0.3)
    assert not slow.ok and slow.kind == "timeout"


def test_detect_local_servers(stub):
    assert detect_ollama("http://127.0.0.1:9", timeout=0.2) == []
    found = detect_ollama(stub.root_url)
    assert {s.model for s in found} == {"openai/stub-small", "openai/stub-large"}
    assert all(s.is_local and s.api_base == stub.root_url + "/v1" for s in found)
    assert list_server_models(stub.base_url) == ["stub-large", "stub-small"]
