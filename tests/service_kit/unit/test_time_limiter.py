"""Resilience4j's TimeLimiter inside the breaker (issue "Resilience4j, exactly", item 4).

Scenarios from resilience4j-timelimiter's `TimeLimiterTest`, `TimeLimiterImplTest` and
`TimeLimiterEventPublisherTest`, and resilience4j-micrometer's `TaggedTimeLimiterMetricsTest`
(https://github.com/resilience4j/resilience4j), each naming the method it comes from; then what a
mutation run found unchecked in the deadline, and how the breaker records a timed-out call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import circuitbreaker
import pytest
from prometheus_client import REGISTRY

from resource_service.config import Settings
from service_kit.resilience import BreakerSettings, CircuitBreaker, call_with_fallback
from service_kit.resilience.time_limiter import TimeLimiter, TimeLimiterSettings
from tests.cancel import cancel_midway


@pytest.fixture(autouse=True)
def own_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuitbreaker.CircuitBreakerMonitor, "circuit_breakers", {})


def limiter(name: str, timeout: float | None) -> TimeLimiter:
    return TimeLimiter(name, TimeLimiterSettings(timeout_duration=timeout))


SERIES = "resilience4j_timelimiter_calls_total"
_at_start: dict[tuple[str, str], float] = {}


@pytest.fixture(autouse=True)
def count_from_the_test_start() -> None:
    """The counters are global to the process: a second run of a test in it (mutmut runs the
    tests more than once) counts from where the first left off, so each test counts from its
    own start."""
    _at_start.clear()
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == SERIES:
                _at_start[sample.labels["name"], sample.labels["kind"]] = sample.value


def counted(name: str, kind: str) -> float:
    sample = REGISTRY.get_sample_value(SERIES, {"name": name, "kind": kind}) or 0.0
    return sample - _at_start.get((name, kind), 0.0)


async def answer() -> str:
    return "Hello world"


async def fail() -> str:
    raise ValueError("broken")


def test_should_return_correct_timeout_duration_and_given_name() -> None:
    """TimeLimiterTest.shouldReturnCorrectTimeoutDuration, TimeLimiterImplTest.namePropagation."""
    tl = limiter("tl-name", 0.25)
    assert (tl.name, tl.timeout) == ("tl-name", 0.25)
    assert TimeLimiterSettings().timeout_duration == 2.0  # no env: Resilience4j's 1 s is ours 2 s


def test_should_throw_timeout_exception_and_invoke_cancel() -> None:
    """TimeLimiterTest.shouldThrowTimeoutExceptionAndInvokeCancel: the call is cancelled."""
    tl = limiter("tl-cancel", 0.05)
    cancelled: list[bool] = []

    async def hang() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(TimeoutError, match=r"tl-cancel: no answer within 0\.05 s"):
        asyncio.run(tl.call(hang))
    assert cancelled == [True]
    assert counted("tl-cancel", "timeout") == 1
    assert [e.type for e in tl.events] == ["TIMEOUT"]


def test_should_return_result_and_unwrap_errors() -> None:
    """TimeLimiterTest.shouldReturnResult and unwrapExecutionException: a result comes back as
    it is; an error of the call is raised as it is, not as a timeout."""
    tl = limiter("tl-result", 1.0)
    assert asyncio.run(tl.call(answer)) == "Hello world"
    with pytest.raises(ValueError, match="broken"):
        asyncio.run(tl.call(fail))
    assert (counted("tl-result", "successful"), counted("tl-result", "failed")) == (1, 1)
    assert counted("tl-result", "timeout") == 0


def test_events_in_actuator_shape() -> None:
    """TimeLimiterEventPublisherTest.shouldConsumeOnSuccessEvent / OnErrorEvent / OnTimeoutEvent,
    listed as Actuator's `timelimiterevents` does."""
    tl = limiter("tl-events", 0.05)
    asyncio.run(tl.call(answer))
    with pytest.raises(ValueError):
        asyncio.run(tl.call(fail))
    with pytest.raises(TimeoutError):
        asyncio.run(tl.call(asyncio.sleep, 1))
    shown = tl.events.as_actuator()
    assert [e["type"] for e in shown] == ["SUCCESS", "ERROR", "TIMEOUT"]
    assert {e["timeLimiterName"] for e in shown} == {"tl-events"}
    assert shown[1]["errorMessage"] == "ValueError: broken"
    assert all("creationTime" in e for e in shown)


def test_series_exist_at_zero_from_the_start() -> None:
    """TaggedTimeLimiterMetricsTest.shouldAddMetricsForANewlyCreatedTimeLimiter: every kind."""
    limiter("tl-fresh", 1.0)
    for kind in ("successful", "failed", "timeout"):
        assert (
            REGISTRY.get_sample_value(
                "resilience4j_timelimiter_calls_total", {"name": "tl-fresh", "kind": kind}
            )
            == 0.0
        )


def test_a_deadline_left_after_a_success_never_cancels_the_caller_later() -> None:
    """A mutation run found this unchecked: after a fast call, the caller goes on past the
    deadline the call had, and nothing cancels it."""
    tl = limiter("tl-armed", 0.05)

    async def scenario() -> str:
        assert await tl.call(answer) == "Hello world"
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
        await asyncio.sleep(0.15)  # three deadlines later
        return "still running"

    assert asyncio.run(scenario()) == "still running"


def test_a_hung_call_times_out_on_time_while_new_calls_keep_arriving() -> None:
    """A mutant stretched a 0.12 s deadline to 1.02 s unnoticed: each call has its own."""
    tl = limiter("tl-staggered", 0.12)

    async def scenario() -> list[Any]:
        hung = asyncio.create_task(tl.call(asyncio.sleep, 10))
        others = []
        for _ in range(5):  # new calls every 0.05 s, each fast
            await asyncio.sleep(0.05)
            others.append(asyncio.create_task(tl.call(answer)))
        return await asyncio.gather(hung, *others, return_exceptions=True)

    started = time.monotonic()
    hung, *others = asyncio.run(scenario())
    assert isinstance(hung, TimeoutError)
    assert others == ["Hello world"] * 5
    assert time.monotonic() - started < 0.6  # the hung call did not wait for 10 s


def test_none_makes_real_calls_however_long() -> None:
    """`timeout_duration=none`: a call runs to its end (a mutation run found this unchecked)."""
    tl = limiter("tl-none", None)

    async def slowish() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert asyncio.run(tl.call(slowish)) == "done"
    assert counted("tl-none", "successful") == 1


def test_outside_cancellation_within_the_deadline_stays_a_cancellation() -> None:
    tl = limiter("tl-outside", 1.0)
    asyncio.run(cancel_midway(tl.call(asyncio.sleep, 10), after=0.01))
    assert counted("tl-outside", "timeout") == 0


def test_the_breaker_records_a_timed_out_call_as_a_failure_by_its_duration() -> None:
    """Inside the breaker (Resilience4j's order), a timeout is an ERROR the breaker records
    like any other: a failure, slow only if it took longer than the slow-call threshold."""
    breaker = CircuitBreaker(
        "tl-breaker",
        BreakerSettings.defaults(
            sliding_window_size=2, minimum_number_of_calls=2, slow_call_duration_threshold=0.01
        ),
    )
    tl = limiter("tl-breaker", 0.05)

    async def scenario() -> list[Any]:
        return [
            await call_with_fallback(breaker, asyncio.sleep, 1, fallback=repr, time_limiter=tl)
            for _ in range(3)
        ]

    first, second, third = asyncio.run(scenario())
    assert second.used_fallback
    assert isinstance(first.error, TimeoutError) and first.used_fallback
    assert breaker.snapshot()["state"] == "OPEN"
    assert (breaker.stats.failed, breaker.window.slow) == (2, 2)
    assert "CallNotPermittedError" in third.value  # rejected: the TimeLimiter never ran
    assert counted("tl-breaker", "timeout") == 2


def test_the_older_variable_name_still_sets_the_storage_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """STORAGE_BREAKER_ATTEMPT_TIMEOUT was the deadline's name before the TimeLimiter; the new
    name wins when both are set."""
    monkeypatch.setenv("STORAGE_BREAKER_ATTEMPT_TIMEOUT", "none")
    assert Settings().storage_time_limiter.timeout_duration is None
    monkeypatch.setenv("STORAGE_BREAKER_ATTEMPT_TIMEOUT", "0.7")
    assert Settings().storage_time_limiter.timeout_duration == 0.7
    monkeypatch.setenv("STORAGE_TIMELIMITER_TIMEOUT_DURATION", "1.5")
    assert Settings().storage_time_limiter.timeout_duration == 1.5
