"""Circuit breaker settings, read from environment variables with a caller-chosen prefix.

This is the only module of `service_kit.resilience` that reads the environment:

    settings = BreakerSettings.from_env("STORAGE_BREAKER_")   # reads STORAGE_BREAKER_* variables
    breaker = CircuitBreaker("storage", settings)

`from_env` passes the prefix through pydantic-settings' `_env_prefix` init argument, so one
class serves every breaker. Durations are seconds (floats); rates are percentages (0-100].
`BreakerSettings(...)` alone reads `BREAKER_*`; `BreakerSettings.defaults()` reads nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BreakerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BREAKER_", extra="ignore", frozen=True, env_parse_none_str="none"
    )

    sliding_window_size: int = Field(10, ge=1)
    """How many of the most recent calls (while CLOSED) the rates are computed over."""
    minimum_number_of_calls: int = Field(5, ge=1)
    """No rate is computed (and the breaker cannot open) before this many calls are recorded."""
    failure_rate_threshold: float = Field(50.0, gt=0, le=100)
    slow_call_rate_threshold: float = Field(100.0, gt=0, le=100)
    slow_call_duration_threshold: float = Field(2.0, gt=0)
    wait_duration_in_open_state: float = Field(5.0, gt=0)
    permitted_number_of_calls_in_half_open_state: int = Field(3, ge=1)
    sliding_window_type: Literal["COUNT_BASED", "TIME_BASED"] = "COUNT_BASED"
    """COUNT_BASED: the last `sliding_window_size` calls; TIME_BASED: the calls of the last
    `sliding_window_size` seconds."""
    automatic_transition_from_open_to_half_open_enabled: bool = False
    """OPEN turns HALF_OPEN when the wait is over even if no call comes (else at the next call)."""
    max_wait_duration_in_half_open_state: float = Field(0.0, ge=0)
    """Past this long in HALF_OPEN, go to `transition_to_state_after_wait_duration`; 0 waits
    for the trial calls however long they take."""
    transition_to_state_after_wait_duration: Literal["OPEN", "CLOSED"] = "OPEN"
    enable_exponential_backoff: bool = False
    """Each OPEN in a row waits `exponential_backoff_multiplier` times longer, up to
    `exponential_max_wait_duration_in_open_state`."""
    exponential_backoff_multiplier: float = Field(1.5, ge=1)
    exponential_max_wait_duration_in_open_state: float | None = Field(None, gt=0)
    enable_randomized_wait: bool = False
    """Each wait in OPEN is drawn from wait * [1 - factor, 1 + factor]."""
    randomized_wait_factor: float = Field(0.5, ge=0, lt=1)
    initial_state: Literal["CLOSED", "OPEN", "METRICS_ONLY", "DISABLED", "FORCED_OPEN"] = "CLOSED"
    event_consumer_buffer_size: int = Field(100, ge=1)
    """How many of the latest events `GET /admin/breakers/{name}/events` can show."""

    @model_validator(mode="before")
    @classmethod
    def _minimum_capped_to_window(cls, values: Any) -> Any:
        """A minimum larger than the window is the window (Resilience4j's
        `CircuitBreakerConfigTest.shouldReduceMinimumNumberOfCallsToSlidingWindowSize`)."""
        if not isinstance(values, dict):
            return values
        fields = cls.model_fields
        if str(values.get("sliding_window_type", "COUNT_BASED")).upper() != "COUNT_BASED":
            return values  # a time window holds any number of calls
        size = values.get("sliding_window_size", fields["sliding_window_size"].default)
        minimum = values.get("minimum_number_of_calls", fields["minimum_number_of_calls"].default)
        with contextlib.suppress(TypeError, ValueError):  # not numbers: the fields say so
            if int(minimum) > int(size):
                return {**values, "minimum_number_of_calls": int(size)}
        return values

    @classmethod
    def from_env(cls, prefix: str = "BREAKER_", **overrides: Any) -> BreakerSettings:
        """Read `<prefix><FIELD_NAME>` variables (case-insensitive); `overrides` win over env."""
        return cls(_env_prefix=prefix, **overrides)

    @classmethod
    def defaults(cls, **overrides: Any) -> BreakerSettings:
        """The documented defaults (plus `overrides`), without looking at the environment."""
        return cls.model_validate({**cls.model_construct().model_dump(), **overrides})
