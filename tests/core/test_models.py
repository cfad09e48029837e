import json

import pytest

from core.errors import ModelError
from core.models import (
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


def test_spec_validation_messages():
    with pytest.raises(ModelError, match="no provider prefix"):
        ModelSpec("x", "gpt-4o-mini")
    with pytest.raises(ModelError, match="not an http"):
        ModelSpec("x", "openai/m", api_base="localhost:11434")
    with pytest.raises(ModelError, match="contains credentials"):
        ModelSpec("x", "openai/m", api_base="http://user:pw@host/v1")
    with pytest.raises(ModelError, match="negative"):
        ModelSpec("x", "openai/m", input_price_per_m=-1)


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
    auth = check_connection(ModelSpec("s", "openai/stub-small", "openai", api_base=stub.base_url, api_key_env="STUB_KEY"))
    assert not auth.ok and auth.kind == "auth"
    assert "sk-wrong-key-456" not in auth.message
    stub.api_key = None
    stub.latency_s = 1.5
    slow = check_connection(openai_compatible("s", "stub-small", stub.base_url), timeout_s=0.3)
    assert not slow.ok and slow.kind == "timeout"


def test_detect_local_servers(stub):
    assert detect_ollama("http://127.0.0.1:9", timeout=0.2) == []
    found = detect_ollama(stub.root_url)
    assert {s.model for s in found} == {"openai/stub-small", "openai/stub-large"}
    assert all(s.is_local and s.api_base == stub.root_url + "/v1" for s in found)
    assert list_server_models(stub.base_url) == ["stub-large", "stub-small"]
