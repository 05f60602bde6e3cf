"""Resilience4j's Retry around the breaker (issue "Resilience4j, exactly", item 4): retries only
what may be retried, waits as Resilience4j's IntervalFunction says, counts its calls in
Resilience4j's kinds and publishes its events; Retry goes outside the breaker, so a rejection
by an open breaker is never retried."""

from __future__ import annotations

import asyncio
import random
import uuid

import circuitbreaker
import httpx2
import pytest
from prometheus_client import REGISTRY

from resource_service.storage_lookup import may_retry
from service_kit.resilience import BreakerSettings, CircuitBreaker, call_with_fallback
from service_kit.resilience.retry import Retry, RetrySettings


@pytest.fixture(autouse=True)
def own_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuitbreaker.CircuitBreakerMonitor, "circuit_breakers", {})


def counted(name: str, kind: str) -> float:
    value = REGISTRY.get_sample_value(
        "resilience4j_retry_calls_total", {"name": name, "kind": kind}
    )
    return value or 0.0


class Flaky:
    """Fails with `errors` in turn, then answers."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retry(name: str, waits: list[float], **settings: object) -> Retry:
    """A Retry of a name no other run in this process used: the counters it makes are global
    (a second run of the same test, as mutmut's, would count twice)."""

    async def record(seconds: float) -> None:
        waits.append(seconds)

    unique = f"{name}-{uuid.uuid4().hex[:8]}"
    return Retry(unique, RetrySettings.defaults(**settings), may_retry, sleep=record)


def test_what_may_be_retried_is_retried_with_the_waits_and_counted() -> None:
    waits: list[float] = []
    flaky = Flaky(httpx2.ConnectError("refused"), TimeoutError())
    r = retry("retry-ok", waits, max_attempts=3, wait_duration=0.5)
    assert asyncio.run(r.call(flaky)) == "ok"
    assert flaky.calls == 3 and waits == [0.5, 0.5]
    assert counted(r.name, "successful_with_retry") == 1
    assert [e.type for e in r.events] == ["RETRY", "RETRY", "SUCCESS"]


def test_attempts_run_out_and_the_last_error_is_raised() -> None:
    waits: list[float] = []
    r = retry("retry-out", waits, max_attempts=2, wait_duration=0.1)
    with pytest.raises(httpx2.ConnectError):
        asyncio.run(r.call(Flaky(*[httpx2.ConnectError("refused")] * 5)))
    assert counted(r.name, "failed_with_retry") == 1
    assert [e.type for e in r.events] == ["RETRY", "ERROR"]


def test_an_error_no_retry_fixes_is_not_retried() -> None:
    request = httpx2.Request("GET", "http://storage/storages")
    not_found = httpx2.HTTPStatusError("404", request=request, response=httpx2.Response(404))
    flaky = Flaky(not_found)
    r = retry("retry-4xx", [], max_attempts=3)
    with pytest.raises(httpx2.HTTPStatusError):
        asyncio.run(r.call(flaky))
    assert flaky.calls == 1
    assert counted(r.name, "failed_without_retry") == 1
    assert [e.type for e in r.events] == ["IGNORED_ERROR"]


def test_the_intervals_grow_and_are_randomized_as_resilience4j_computes_them() -> None:
    r = Retry(
        "intervals",
        RetrySettings.defaults(
            wait_duration=1.0, enable_exponential_backoff=True, exponential_backoff_multiplier=2,
            exponential_max_wait_duration=5.0,
        ),
        may_retry,
    )  # fmt: skip
    assert [r.interval(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    randomized = Retry(
        "randomized",
        RetrySettings.defaults(wait_duration=1.0, enable_randomized_wait=True),
        may_retry,
        rng=random.Random(7),
    )
    drawn = [randomized.interval(1) for _ in range(50)]
    assert all(0.5 <= d <= 1.5 for d in drawn) and len(set(drawn)) > 1


def test_retry_goes_outside_the_breaker_and_never_retries_a_rejection() -> None:
    """Each attempt is a call through the breaker; once it opens, the rejection ends the retry
    and the fallback serves."""
    breaker = CircuitBreaker(
        "retry-breaker",
        BreakerSettings.defaults(sliding_window_size=2, minimum_number_of_calls=2),
    )
    flaky = Flaky(*[httpx2.ConnectError("refused")] * 10)
    waits: list[float] = []
    r = retry("retry-outside", waits, max_attempts=5, wait_duration=0.0)
    served = asyncio.run(call_with_fallback(breaker, flaky, fallback=lambda _: "stub", retry=r))
    assert served.value == "stub" and served.used_fallback
    assert flaky.calls == 2  # two attempts opened the breaker; the third was rejected
    assert breaker.stats.failed == 2 and breaker.stats.not_permitted == 1
    assert [e.type for e in r.events] == ["RETRY", "RETRY", "IGNORED_ERROR"]
