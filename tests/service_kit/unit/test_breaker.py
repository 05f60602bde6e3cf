"""Unit tests for service_kit.resilience: an injected clock, no sleeping (except one timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import circuitbreaker
import httpx2
import pytest
import structlog
from prometheus_client import CollectorRegistry

from service_kit.resilience import (
    BreakerSettings,
    CallNotPermittedError,
    CircuitBreaker,
    Outcome,
    Served,
    State,
    TransitionEvent,
    call_with_fallback,
    default_classifier,
)
from service_kit.resilience.metrics import track
from tests.cancel import cancel_midway


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(autouse=True)
def own_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """circuitbreaker's monitor is process-global: each test sees only its own breakers, so no
    test depends on which ran before it."""
    monkeypatch.setattr(circuitbreaker.CircuitBreakerMonitor, "circuit_breakers", {})


@pytest.fixture
def make(clock: FakeClock, registry: CollectorRegistry) -> Callable[..., CircuitBreaker]:
    def make_breaker(name: str = "test", **settings: Any) -> CircuitBreaker:
        breaker = CircuitBreaker(name, BreakerSettings.defaults(**settings), clock=clock)
        track(breaker, registry)  # the exporter binds from outside, as in the services
        return breaker

    return make_breaker


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def http_error(status: int) -> httpx2.HTTPStatusError:
    request = httpx2.Request("GET", "http://storage.test/songs/1")
    response = httpx2.Response(status, request=request)
    return httpx2.HTTPStatusError(f"HTTP {status}", request=request, response=response)


async def succeed() -> str:
    return "ok"


async def fail() -> str:
    raise httpx2.ConnectError("connection refused")


def raising(error: BaseException) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        raise error

    return call


def taking(
    clock: FakeClock, seconds: float, error: BaseException | None = None
) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        clock.advance(seconds)
        if error is not None:
            raise error
        return "ok"

    return call


async def calls(breaker: CircuitBreaker, *fns: Callable[[], Awaitable[str]]) -> list[Any]:
    """Call each fn through the breaker in turn; exceptions are returned, not raised."""
    results: list[Any] = []
    for fn in fns:
        try:
            results.append(await breaker.call(fn))
        except Exception as error:
            results.append(error)
    return results


def open_breaker(breaker: CircuitBreaker) -> None:
    run(calls(breaker, *[fail] * breaker.settings.minimum_number_of_calls))
    assert breaker.state is State.OPEN


def half_open_breaker(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(breaker.settings.wait_duration_in_open_state)


# -- CLOSED -> OPEN --------------------------------------------------------------------------


def test_opens_when_failure_rate_reaches_threshold(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make(sliding_window_size=10, minimum_number_of_calls=5, failure_rate_threshold=50)
    run(calls(breaker, succeed, succeed, succeed, fail, fail))
    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["failure_rate"] == 40.0

    run(calls(breaker, fail))

    assert breaker.state is State.OPEN
    assert breaker.snapshot() == {
        "name": "test",
        "state": "OPEN",
        "failure_rate": 50.0,
        "slow_call_rate": 0.0,
        "buffered_calls": 6,
        "failed_calls": 3,
        "slow_calls": 0,
        "not_permitted_calls": 0,
    }


def test_stays_closed_below_minimum_number_of_calls(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make(minimum_number_of_calls=5)
    run(calls(breaker, *[fail] * 4))
    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["failure_rate"] == -1.0  # no rate before the minimum
    assert breaker.snapshot()["failed_calls"] == 4

    run(calls(breaker, fail))

    assert breaker.state is State.OPEN
    assert breaker.snapshot()["failure_rate"] == 100.0


def test_window_keeps_only_the_last_n_calls(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make(sliding_window_size=4, minimum_number_of_calls=4, failure_rate_threshold=50)
    run(calls(breaker, fail, succeed, succeed, succeed))
    assert breaker.snapshot()["failure_rate"] == 25.0

    run(calls(breaker, succeed))  # the failure drops out
    assert (breaker.snapshot()["failed_calls"], breaker.snapshot()["buffered_calls"]) == (0, 4)

    run(calls(breaker, fail))
    assert breaker.state is State.CLOSED
    run(calls(breaker, fail))
    assert breaker.state is State.OPEN
    assert breaker.snapshot()["failure_rate"] == 50.0


def test_opens_when_slow_call_rate_reaches_threshold(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(slow_call_rate_threshold=60, slow_call_duration_threshold=2.0)
    slow, just_in_time = taking(clock, 2.5), taking(clock, 2.0)
    run(calls(breaker, slow, slow, just_in_time, succeed))
    assert breaker.snapshot()["slow_calls"] == 2  # a call lasting exactly the threshold is not slow

    run(calls(breaker, slow))

    assert breaker.state is State.OPEN
    assert breaker.snapshot()["slow_call_rate"] == 60.0
    assert breaker.snapshot()["failure_rate"] == 0.0


def test_slow_failures_count_towards_both_rates(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(slow_call_rate_threshold=100, failure_rate_threshold=100)
    slow_failure = taking(clock, 3.0, OSError("reset"))
    run(calls(breaker, *[slow_failure] * 5))
    assert breaker.state is State.OPEN
    snapshot = breaker.snapshot()
    assert (snapshot["failure_rate"], snapshot["slow_call_rate"]) == (100.0, 100.0)


# -- OPEN -> HALF_OPEN -> CLOSED / OPEN --------------------------------------------------------


def test_open_rejects_until_the_wait_is_over(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(wait_duration_in_open_state=5.0)
    open_breaker(breaker)
    reached = []

    async def record() -> str:
        reached.append(1)
        return "ok"

    clock.advance(4.999)
    [rejected] = run(calls(breaker, record))
    assert isinstance(rejected, CallNotPermittedError)
    assert isinstance(rejected, circuitbreaker.CircuitBreakerError)
    assert str(rejected) == "CircuitBreaker 'test' is OPEN and does not permit further calls"
    assert rejected.causing_circuit_breaker_name == "test"
    assert reached == []
    assert breaker.snapshot()["not_permitted_calls"] == 1

    clock.advance(0.001)
    assert run(calls(breaker, record)) == ["ok"]

    assert reached == [1]
    assert breaker.state is State.HALF_OPEN  # one of three trial calls done


def test_half_open_closes_when_trial_calls_succeed(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=3)
    half_open_breaker(breaker, clock)
    run(calls(breaker, succeed, fail))
    assert breaker.state is State.HALF_OPEN

    run(calls(breaker, succeed))  # 1 of 3 failed: 33% < 50%

    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["buffered_calls"] == 0  # a fresh window


def test_half_open_reopens_when_trial_calls_fail(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=3)
    half_open_breaker(breaker, clock)

    run(calls(breaker, fail, succeed, fail))

    assert breaker.state is State.OPEN
    assert breaker.snapshot()["failure_rate"] == pytest.approx(200 / 3)
    [rejected] = run(calls(breaker, succeed))  # a new full wait starts now
    assert isinstance(rejected, CallNotPermittedError)


def test_half_open_permits_exactly_n_concurrent_calls(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=3)
    half_open_breaker(breaker, clock)
    entered = 0

    async def scenario() -> list[Any]:
        gate = asyncio.Event()

        async def held() -> str:
            nonlocal entered
            entered += 1
            await gate.wait()
            return "ok"

        async def release() -> None:
            # gather starts its tasks in order: by now every call has been admitted or rejected
            gate.set()

        *results, _ = await asyncio.gather(
            *(breaker.call(held) for _ in range(6)), release(), return_exceptions=True
        )
        return results

    results = run(scenario())

    assert entered == 3
    assert results.count("ok") == 3
    assert sum(isinstance(result, CallNotPermittedError) for result in results) == 3
    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["not_permitted_calls"] == 3


def test_ignored_trial_call_frees_its_permit(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=1)
    half_open_breaker(breaker, clock)

    async def scenario() -> list[Any]:
        gate = asyncio.Event()

        async def not_found_later() -> str:
            await gate.wait()
            raise http_error(404)

        trial = asyncio.create_task(breaker.call(not_found_later))
        await asyncio.sleep(0)
        while_busy = await calls(breaker, succeed)
        gate.set()
        with pytest.raises(httpx2.HTTPStatusError):
            await trial
        return [*while_busy, *await calls(breaker, succeed)]

    rejected, after = run(scenario())

    assert isinstance(rejected, CallNotPermittedError)
    assert after == "ok"
    assert breaker.state is State.CLOSED


def test_calls_started_before_a_transition_do_not_count_after_it(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=1)

    async def scenario() -> None:
        gate = asyncio.Event()

        async def fail_later() -> str:
            await gate.wait()
            raise OSError("late")

        straggler = asyncio.create_task(breaker.call(fail_later))
        await asyncio.sleep(0)
        await calls(breaker, *[fail] * 5)
        clock.advance(5.0)
        await calls(breaker, succeed)  # the only trial call: HALF_OPEN -> CLOSED
        gate.set()
        with pytest.raises(OSError):
            await straggler

    run(scenario())

    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["buffered_calls"] == 0
    assert breaker.stats.failed == 6  # still measured, just not in the new window


# -- outcome classification ---------------------------------------------------------------------


def test_cancellation_is_ignored_and_reraised(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make()
    run(cancel_midway(breaker.call(asyncio.sleep, 10)))

    assert breaker.snapshot()["buffered_calls"] == 0
    stats = breaker.stats
    assert (stats.successful, stats.failed, stats.ignored) == (0, 0, 1)


def test_cancelled_trial_call_frees_its_permit(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make(permitted_number_of_calls_in_half_open_state=1)
    half_open_breaker(breaker, clock)

    async def scenario() -> list[Any]:
        task = asyncio.create_task(breaker.call(asyncio.sleep, 10))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await calls(breaker, succeed)

    assert run(scenario()) == ["ok"]
    assert breaker.state is State.CLOSED


def test_http_4xx_is_ignored_and_5xx_is_a_failure(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make()
    run(calls(breaker, *[raising(http_error(404))] * 5, raising(http_error(429))))
    assert breaker.state is State.CLOSED
    assert breaker.snapshot()["buffered_calls"] == 0
    assert breaker.stats.ignored == 6

    run(calls(breaker, *[raising(http_error(503))] * 5))

    assert breaker.state is State.OPEN
    assert breaker.snapshot()["failed_calls"] == 5


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (http_error(500), Outcome.FAILURE),
        (http_error(502), Outcome.FAILURE),
        (http_error(400), Outcome.IGNORED),
        (http_error(404), Outcome.IGNORED),
        (httpx2.ConnectError("refused"), Outcome.FAILURE),
        (httpx2.ReadTimeout("slow"), Outcome.FAILURE),
        (TimeoutError(), Outcome.FAILURE),
        (ConnectionResetError(), Outcome.FAILURE),
        (RuntimeError("bug"), Outcome.FAILURE),
        (asyncio.CancelledError(), Outcome.IGNORED),
        (KeyboardInterrupt(), Outcome.IGNORED),
    ],
)
def test_default_classifier(error: BaseException, outcome: Outcome) -> None:
    assert default_classifier(error) is outcome


def test_classifier_is_pluggable(clock: FakeClock, registry: CollectorRegistry) -> None:
    def lookups_may_miss(error: BaseException) -> Outcome:
        return Outcome.IGNORED if isinstance(error, KeyError) else default_classifier(error)

    breaker = CircuitBreaker("lookup", classifier=lookups_may_miss, clock=clock)
    run(calls(breaker, *[raising(KeyError("song"))] * 5, raising(ValueError("bad"))))
    assert (breaker.stats.ignored, breaker.stats.failed) == (5, 1)


# -- manual states ------------------------------------------------------------------------------


def test_forced_open_rejects_until_closed(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make()
    breaker.force_open()
    clock.advance(3600)
    [rejected] = run(calls(breaker, succeed))
    assert isinstance(rejected, CallNotPermittedError)
    assert breaker.state is State.FORCED_OPEN
    assert list(circuitbreaker.CircuitBreakerMonitor.get_open()) == [breaker]

    breaker.close()

    assert breaker.state is State.CLOSED
    assert run(calls(breaker, succeed)) == ["ok"]


def test_close_resets_the_window(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make()
    open_breaker(breaker)
    breaker.close()
    assert breaker.snapshot()["buffered_calls"] == 0
    run(calls(breaker, *[fail] * 4))
    assert breaker.state is State.CLOSED


def test_disabled_permits_everything_and_records_nothing(
    make: Callable[..., CircuitBreaker],
) -> None:
    breaker = make()
    breaker.disable()
    results = run(calls(breaker, *[fail] * 20, succeed))
    assert results[-1] == "ok"
    assert breaker.state is State.DISABLED
    assert breaker.snapshot()["buffered_calls"] == 0
    assert (breaker.stats.successful, breaker.stats.failed) == (0, 0)


# -- fallback -----------------------------------------------------------------------------------


def test_fallback_is_used_on_failure_while_closed(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make()
    boom = OSError("reset")
    served = run(call_with_fallback(breaker, raising(boom), fallback=lambda error: "stub"))
    assert served == Served("stub", used_fallback=True, error=boom)
    assert breaker.state is State.CLOSED


def test_fallback_is_used_on_rejection(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make()
    open_breaker(breaker)

    async def last_known_good(error: BaseException) -> str:
        return "cached"

    served = run(call_with_fallback(breaker, succeed, fallback=last_known_good))
    assert (served.value, served.used_fallback) == ("cached", True)
    assert isinstance(served.error, CallNotPermittedError)


def test_fallback_is_not_used_on_success_or_cancellation(
    make: Callable[..., CircuitBreaker],
) -> None:
    breaker = make()
    served = run(call_with_fallback(breaker, succeed, fallback=lambda error: "stub"))
    assert served == Served("ok", used_fallback=False, error=None)
    with pytest.raises(asyncio.CancelledError):
        run(call_with_fallback(breaker, raising(asyncio.CancelledError()), fallback=lambda e: "x"))


def test_fallback_serves_an_ignored_error_which_the_window_does_not_count(
    make: Callable[..., CircuitBreaker],
) -> None:
    # As Resilience4j's Decorators.withFallback: the caller still needs an answer after a 4xx,
    # which says nothing about the dependency's health.
    breaker = make()
    not_found = http_error(404)
    served = run(call_with_fallback(breaker, raising(not_found), fallback=lambda error: "stub"))
    assert served == Served("stub", used_fallback=True, error=not_found)
    assert (breaker.stats.ignored, breaker.stats.failed, breaker.window.size) == (1, 0, 0)


# -- events, decorator, registry -----------------------------------------------------------------


def test_transitions_are_logged_and_sent_to_listeners(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    breaker = make()
    events: list[TransitionEvent] = []
    breaker.add_listener(events.append)

    def broken(event: TransitionEvent) -> None:
        raise RuntimeError("a listener's bug")

    breaker.add_listener(broken)  # a broken listener must not break the breaker

    with structlog.testing.capture_logs() as logs:
        open_breaker(breaker)
        clock.advance(5.0)
        run(calls(breaker, succeed, succeed, succeed))

    assert [(event.from_state, event.to_state) for event in events] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
    ]
    assert events[0] == TransitionEvent("test", State.CLOSED, State.OPEN, 100.0, 0.0)
    transitions = [entry for entry in logs if entry["event"] == "circuit_breaker_transition"]
    assert transitions[0] == {
        "event": "circuit_breaker_transition",
        "log_level": "info",
        "breaker": "test",
        "from_state": "CLOSED",
        "to_state": "OPEN",
        "failure_rate": 100.0,
        "slow_call_rate": 0.0,
    }
    assert [entry["to_state"] for entry in transitions] == ["OPEN", "HALF_OPEN", "CLOSED"]
    assert sum(entry["event"] == "circuit_breaker_listener_failed" for entry in logs) == 3


def test_decorator_guards_async_functions_only(make: Callable[..., CircuitBreaker]) -> None:
    breaker = make("decorated")

    @breaker
    async def fetch(song_id: int) -> int:
        return song_id * 2

    assert run(fetch(21)) == 42
    assert breaker.stats.successful == 1
    assert circuitbreaker.CircuitBreakerMonitor.get("decorated") is breaker
    with pytest.raises(TypeError):
        breaker(lambda: None)


# -- metrics ------------------------------------------------------------------------------------


def test_metrics_are_shared_by_label_in_one_registry(
    make: Callable[..., CircuitBreaker], clock: FakeClock, registry: CollectorRegistry
) -> None:
    storage = make("storage")
    make("songs")  # the same registry: no duplicate-timeseries error
    quarter_second = taking(clock, 0.25)
    run(calls(storage, raising(http_error(404)), quarter_second, quarter_second))
    run(calls(storage, taking(clock, 1.0, OSError("reset")), fail, fail))  # 3 of 5 failed: OPEN
    run(calls(storage, succeed))  # rejected

    def sample(metric: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"resilience4j_circuitbreaker_{metric}", labels)

    assert sample("state", name="storage", state="open") == 1.0
    assert sample("state", name="storage", state="closed") == 0.0
    assert sample("state", name="songs", state="closed") == 1.0
    assert sample("calls_seconds_count", name="storage", kind="successful") == 2.0
    assert sample("calls_seconds_sum", name="storage", kind="successful") == 0.5
    assert sample("calls_seconds_count", name="storage", kind="failed") == 3.0
    assert sample("calls_seconds_sum", name="storage", kind="failed") == 1.0
    assert sample("calls_seconds_count", name="storage", kind="ignored") == 1.0
    assert sample("failure_rate", name="storage") == 60.0
    assert sample("slow_call_rate", name="storage") == 0.0
    assert sample("failure_rate", name="songs") == -1.0
    assert sample("not_permitted_calls_total", name="storage") == 1.0
    assert sample("not_permitted_calls_total", name="songs") == 0.0
    assert sample("buffered_calls", name="storage", kind="successful") == 2.0
    assert sample("buffered_calls", name="storage", kind="failed") == 3.0


def test_breakers_on_the_default_registry_do_not_collide(clock: FakeClock) -> None:
    first = CircuitBreaker("default-registry", clock=clock)
    second = CircuitBreaker("default-registry-2", clock=clock)
    assert first.state is second.state is State.CLOSED
