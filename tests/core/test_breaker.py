"""The circuit breaker: trips on failures in a row or on a failure rate, never on wrong or unparsed answers."""

import pytest

from core.config.errors import ConfigError, ProviderError
from core.lm.breaker import BreakerSettings, CircuitBreaker


def test_trips_after_consecutive_provider_failures_and_names_the_error():
    b = CircuitBreaker("stub-small", BreakerSettings(consecutive=3, min_calls=100))
    assert not b.record(None) and not b.record("timeout") and not b.record("timeout")
    assert b.record("unreachable", "Connection refused")
    err = b.error()
    assert isinstance(err, ProviderError) and err.kind == "unreachable"
    assert "stub-small" in str(err) and "3 provider failures in a row" in str(err) and "Connection refused" in str(err)


def test_a_success_resets_the_run_and_parse_failures_never_count():
    b = CircuitBreaker("m", BreakerSettings(consecutive=2, min_calls=100))
    for kind in ("server_error", None, "server_error", "parse", "parse", None):
        assert not b.record(kind)
    assert not b.tripped and b.provider_failures == 2


def test_trips_on_the_failure_rate_only_after_the_minimum_count():
    b = CircuitBreaker("m", BreakerSettings(consecutive=100, max_rate=0.5, min_calls=10))
    tripped_at = None
    for i in range(20):
        if b.record("rate_limit" if i % 2 == 0 else None):
            tripped_at = b.calls
            break
    assert tripped_at == 11 and "6 of 11 calls failed" in b.reason  # checked when a failure comes in


def test_settings_come_from_the_environment_and_are_checked(monkeypatch):
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_CONSECUTIVE", "7")
    monkeypatch.setenv("GEPA_STUDIO_DEGRADED_ABOVE", "0.2")
    s = BreakerSettings.from_env()
    assert (s.consecutive, s.degraded_above) == (7, 0.2)
    assert s.degraded(3, 10) and not s.degraded(2, 10)
    monkeypatch.setenv("GEPA_STUDIO_BREAKER_RATE", "lots")
    with pytest.raises(ConfigError, match="GEPA_STUDIO_BREAKER_RATE"):
        BreakerSettings.from_env()
    with pytest.raises(ConfigError):
        BreakerSettings(max_rate=1.5)
