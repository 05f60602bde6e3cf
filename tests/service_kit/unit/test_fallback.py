"""call_with_fallback's answers, with and without a Retry around the breaker: what a mutation
run found unchecked (docs/mutation.md). The fallback's behaviour under faults is tested with
the breaker (test_breaker.py) and the Retry (test_retry.py)."""

from __future__ import annotations

import asyncio
import uuid

import circuitbreaker
import pytest

from service_kit.resilience import BreakerSettings, CircuitBreaker, Served, call_with_fallback
from service_kit.resilience.retry import Retry, RetrySettings


@pytest.fixture(autouse=True)
def own_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuitbreaker.CircuitBreakerMonitor, "circuit_breakers", {})


def breaker() -> CircuitBreaker:
    return CircuitBreaker(f"fallback-{uuid.uuid4().hex[:8]}", BreakerSettings.defaults())


def retry() -> Retry:
    async def no_wait(_: float) -> None:
        return None

    settings = RetrySettings.defaults(max_attempts=2, wait_duration=0.0)
    return Retry(f"fallback-{uuid.uuid4().hex[:8]}", settings, lambda _: True, sleep=no_wait)


async def echo(word: str, *, suffix: str) -> str:
    return word + suffix


async def broken(word: str, *, suffix: str) -> str:
    raise OSError(f"no {word}{suffix}")


@pytest.mark.parametrize("with_retry", [False, True], ids=["breaker", "retry"])
def test_a_call_that_works_is_served_live_with_its_arguments(with_retry: bool) -> None:
    served = asyncio.run(
        call_with_fallback(
            breaker(),
            echo,
            "live",
            suffix="!",
            fallback=lambda _: "stale",
            retry=retry() if with_retry else None,
        )
    )
    assert served == Served("live!", False, None)
    assert served.used_fallback is False


@pytest.mark.parametrize("with_retry", [False, True], ids=["breaker", "retry"])
def test_a_failing_call_hands_its_error_to_the_fallback(with_retry: bool) -> None:
    seen: list[BaseException] = []

    def fallback(error: BaseException) -> str:
        seen.append(error)
        return "stale"

    served = asyncio.run(
        call_with_fallback(
            breaker(),
            broken,
            "answer",
            suffix="?",
            fallback=fallback,
            retry=retry() if with_retry else None,
        )
    )
    assert served.value == "stale" and served.used_fallback is True
    assert [str(error) for error in seen] == ["no answer?"]
    assert served.error is seen[0]
