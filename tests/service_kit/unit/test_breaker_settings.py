"""BreakerSettings: the caller picks the environment prefix; defaults read nothing."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service_kit.resilience import BreakerSettings


def test_defaults() -> None:
    settings = BreakerSettings.defaults()
    assert settings.model_dump() == {
        "sliding_window_size": 10,
        "minimum_number_of_calls": 5,
        "failure_rate_threshold": 50.0,
        "slow_call_rate_threshold": 100.0,
        "slow_call_duration_threshold": 2.0,
        "wait_duration_in_open_state": 5.0,
        "permitted_number_of_calls_in_half_open_state": 3,
        "sliding_window_type": "COUNT_BASED",
        "automatic_transition_from_open_to_half_open_enabled": False,
        "max_wait_duration_in_half_open_state": 0.0,
        "transition_to_state_after_wait_duration": "OPEN",
        "enable_exponential_backoff": False,
        "exponential_backoff_multiplier": 1.5,
        "exponential_max_wait_duration_in_open_state": None,
        "enable_randomized_wait": False,
        "randomized_wait_factor": 0.5,
        "initial_state": "CLOSED",
        "event_consumer_buffer_size": 100,
    }


def test_from_env_reads_only_the_given_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_BREAKER_SLIDING_WINDOW_SIZE", "20")
    monkeypatch.setenv("STORAGE_BREAKER_WAIT_DURATION_IN_OPEN_STATE", "0.5")
    monkeypatch.setenv("STORAGE_BREAKER_EXPONENTIAL_MAX_WAIT_DURATION_IN_OPEN_STATE", "none")
    monkeypatch.setenv("SONGS_BREAKER_SLIDING_WINDOW_SIZE", "99")

    settings = BreakerSettings.from_env("STORAGE_BREAKER_", minimum_number_of_calls=7)

    assert settings.sliding_window_size == 20
    assert settings.wait_duration_in_open_state == 0.5
    assert settings.exponential_max_wait_duration_in_open_state is None
    assert settings.minimum_number_of_calls == 7
    assert settings.failure_rate_threshold == 50.0


def test_defaults_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREAKER_SLIDING_WINDOW_SIZE", "42")
    assert BreakerSettings.defaults().sliding_window_size == 10
    assert BreakerSettings().sliding_window_size == 42  # the default prefix is BREAKER_


@pytest.mark.parametrize(
    "invalid",
    [
        {"sliding_window_size": 0},
        {"failure_rate_threshold": 101},
        {"slow_call_duration_threshold": 0},
        {"wait_duration_in_open_state": 0},
    ],
)
def test_invalid_settings_are_rejected(invalid: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        BreakerSettings.defaults(**invalid)


def test_a_minimum_larger_than_the_window_is_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resilience4j caps it (CircuitBreakerConfigTest.
    shouldReduceMinimumNumberOfCallsToSlidingWindowSize); ours used to stop the service at start
    when only STORAGE_BREAKER_SLIDING_WINDOW_SIZE=3 was set."""
    capped = BreakerSettings.defaults(sliding_window_size=5, minimum_number_of_calls=6)
    assert (capped.sliding_window_size, capped.minimum_number_of_calls) == (5, 5)
    monkeypatch.setenv("STORAGE_BREAKER_SLIDING_WINDOW_SIZE", "3")
    assert BreakerSettings.from_env("STORAGE_BREAKER_").minimum_number_of_calls == 3
