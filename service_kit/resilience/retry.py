"""Resilience4j's Retry for async calls, on tenacity: the settings, events and series of
Resilience4j's, the retrying loop of the library Python users know.

Decorators go in Resilience4j's documented order, Retry outermost: fallback(Retry(
CircuitBreaker(TimeLimiter(call)))). So each attempt goes through the breaker and is counted
there, and a rejection by an open breaker (`CallNotPermittedError`) is never retried: only what
`retry_on` says may be retried (for the storage lookup: transport errors, timeouts, 5xx).

Series: `resilience4j_retry_calls_total{name, kind}` with Resilience4j's kinds
(successful_without_retry, successful_with_retry, failed_with_retry, failed_without_retry).
Events (the last 100): RETRY before each new attempt, SUCCESS after a success that took retries,
ERROR when the attempts ran out, IGNORED_ERROR for an error that may not be retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from service_kit.resilience.events import EventLog
from service_kit.resilience.interval import interval_of

P = ParamSpec("P")
T = TypeVar("T")

_calls: Counter | None = None


def _calls_counter() -> Counter:
    """Registered when the first Retry is built, not at import: a process that only imports
    the resilience package (the processor) exports no Retry series."""
    global _calls
    if _calls is None:
        _calls = Counter(
            "resilience4j_retry_calls", "Calls through a Retry, by outcome", ["name", "kind"]
        )
    return _calls


KINDS = (
    "successful_without_retry",
    "successful_with_retry",
    "failed_with_retry",
    "failed_without_retry",
)


class RetrySettings(BaseSettings):
    """Resilience4j's Retry settings in snake_case; `from_env("STORAGE_RETRY_")` reads
    `STORAGE_RETRY_MAX_ATTEMPTS` and so on. One attempt (no retry) by default."""

    model_config = SettingsConfigDict(env_prefix="RETRY_", extra="ignore", frozen=True)

    max_attempts: int = Field(1, ge=1)
    wait_duration: float = Field(0.5, ge=0)
    enable_exponential_backoff: bool = False
    exponential_backoff_multiplier: float = Field(1.5, ge=1)
    exponential_max_wait_duration: float | None = Field(None, gt=0)
    enable_randomized_wait: bool = False
    randomized_wait_factor: float = Field(0.5, ge=0, lt=1)

    @classmethod
    def from_env(cls, prefix: str, **overrides: Any) -> RetrySettings:
        return cls(_env_prefix=prefix, **overrides)

    @classmethod
    def defaults(cls, **overrides: Any) -> RetrySettings:
        return cls.model_validate({**cls.model_construct().model_dump(), **overrides})


class Retry:
    def __init__(
        self,
        name: str,
        settings: RetrySettings,
        retry_on: Callable[[BaseException], bool],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.retry_on = retry_on
        self.events = EventLog("retryName", name)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._interval = interval_of(
            settings, settings.wait_duration, settings.exponential_max_wait_duration
        )
        self._calls = _calls_counter()
        for kind in KINDS:  # every series from the start, at zero
            self._calls.labels(name, kind)

    def interval(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        return self._interval(attempt, self._rng)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """`await fn(*args)`, again after a wait while it raises what may be retried, up to
        `max_attempts` in all; the last error is raised as it is."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=lambda state: self.interval(state.attempt_number),
            retry=retry_if_exception(self.retry_on),
            sleep=self._sleep,
            before_sleep=self._on_retry,
            reraise=True,
        )
        attempts = 0
        try:
            async for attempt in retrying:
                attempts = attempt.retry_state.attempt_number
                with attempt:
                    result = await fn(*args, **kwargs)
        except Exception as error:
            self._on_failure(error, attempts)
            raise
        kind = "successful_with_retry" if attempts > 1 else "successful_without_retry"
        self._calls.labels(self.name, kind).inc()
        if attempts > 1:
            self._publish("SUCCESS", attempts)
        return result

    def _on_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else None
        self._publish("RETRY", state.attempt_number, error, wait)

    def _on_failure(self, error: BaseException, attempts: int) -> None:
        kind = "failed_with_retry" if attempts > 1 else "failed_without_retry"
        self._calls.labels(self.name, kind).inc()
        self._publish("ERROR" if self.retry_on(error) else "IGNORED_ERROR", attempts, error)

    def _publish(
        self,
        kind: str,
        attempts: int,
        error: BaseException | None = None,
        wait: float | None = None,
    ) -> None:
        message = None if error is None else f"{type(error).__name__}: {error}"[:300]
        # Actuator's field names; the wait is ours (seconds before the next attempt).
        self.events.publish(
            kind, numberOfAttempts=attempts, errorMessage=message, waitDurationInSeconds=wait
        )
