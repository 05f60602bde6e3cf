"""Resilience4j's TimeLimiter for async calls: `asyncio.timeout()` with its settings, events and
series.

It goes inside the breaker (Resilience4j's documented order: Retry, CircuitBreaker,
TimeLimiter, the call), so the breaker records a timed-out call as an ERROR that took as long
as the timeout: a failure, and slow when the timeout is above `slow_call_duration_threshold`.

Differences from Resilience4j, for asyncio: the timed-out call is always cancelled
(`cancelRunningFuture` is true and cannot be turned off: an abandoned coroutine would keep its
connection), and `timeout_duration` may be `none` (env value): no deadline, calls counted.

Series: `resilience4j_timelimiter_calls_total{name, kind}` with Resilience4j's kinds
(successful, failed, timeout). Events (the last 100): SUCCESS, ERROR, TIMEOUT.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service_kit.resilience.events import EventLog

P = ParamSpec("P")
T = TypeVar("T")

KINDS = ("successful", "failed", "timeout")
_calls: Counter | None = None


def _calls_counter() -> Counter:
    """Registered when the first TimeLimiter is built, not at import (as Retry's series)."""
    global _calls
    if _calls is None:
        _calls = Counter(
            "resilience4j_timelimiter_calls", "Calls through a TimeLimiter", ["name", "kind"]
        )
    return _calls


class TimeLimiterSettings(BaseSettings):
    """`from_env("STORAGE_TIMELIMITER_")` reads `STORAGE_TIMELIMITER_TIMEOUT_DURATION`."""

    model_config = SettingsConfigDict(
        env_prefix="TIMELIMITER_", extra="ignore", frozen=True, env_parse_none_str="none"
    )

    timeout_duration: float | None = Field(2.0, gt=0)
    """Seconds a call may take; past them it is cancelled and `TimeoutError` raised."""

    @classmethod
    def from_env(cls, prefix: str, **overrides: Any) -> TimeLimiterSettings:
        return cls(_env_prefix=prefix, **overrides)


class TimeLimiter:
    def __init__(self, name: str, settings: TimeLimiterSettings) -> None:
        self.name = name
        self.settings = settings
        self.timeout = settings.timeout_duration
        self.events = EventLog("timeLimiterName", name)
        calls = _calls_counter()
        self._successful, self._failed, self._timed_out = (calls.labels(name, k) for k in KINDS)

    async def call(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """`await fn(*args, **kwargs)`, cancelled past the timeout (then `TimeoutError`)."""
        # Not `asyncio.wait_for`: it would run `fn` in a task of its own, a cost on every call.
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                result = await fn(*args, **kwargs)
        except Exception as error:
            if deadline.expired():
                self._timed_out.inc()
                self.events.publish("TIMEOUT")
                raise TimeoutError(f"{self.name}: no answer within {self.timeout} s") from error
            self._failed.inc()
            self.events.publish("ERROR", errorMessage=f"{type(error).__name__}: {error}"[:300])
            raise
        self._successful.inc()
        self.events.publish("SUCCESS")
        return result
