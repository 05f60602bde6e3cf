"""Resilience4j's own circuit breaker tests, ported scenario by scenario.

Each test names the Resilience4j test method it comes from (resilience4j-circuitbreaker,
src/test/java/io/github/resilience4j/circuitbreaker/..., read at af9e7c979). Java's
`tryAcquirePermission()` + `onSuccess/onError(duration)` are `permit()` +
`call_permitted(token, fn)` here, on an injected clock. Deliberate differences are named where
they apply (docs/resilience.md, "The resilience layer").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import circuitbreaker
import pytest
from pydantic import SecretStr

from service_kit.resilience import (
    BreakerSettings,
    CallNotPermittedError,
    CircuitBreaker,
    Outcome,
    State,
    TransitionEvent,
)
from service_kit.resilience.breaker import IllegalStateTransition


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class BusinessError(Exception):
    """An error of the caller's domain: the dependency answered."""


@pytest.fixture(autouse=True)
def own_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuitbreaker.CircuitBreakerMonitor, "circuit_breakers", {})


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(
    clock: Clock, name: str = "testName", classifier: Any = None, **settings: Any
) -> CircuitBreaker:
    """Resilience4j's test setup: window 5, minimum 5, 2 half-open calls, wait 5 s, 50 %."""
    defaults = {
        "sliding_window_size": 5,
        "minimum_number_of_calls": 5,
        "permitted_number_of_calls_in_half_open_state": 2,
        "wait_duration_in_open_state": 5.0,
    }
    extra = {} if classifier is None else {"classifier": classifier}
    return CircuitBreaker(
        name, BreakerSettings.defaults(**{**defaults, **settings}), clock=clock, **extra
    )


def outcome(cb: CircuitBreaker, error: BaseException | None = None, seconds: float = 0.0) -> object:
    """One permitted call that succeeds, or raises `error`, taking `seconds` on the clock; None
    when the breaker rejected it."""
    token = cb.permit()
    if token is None:
        return None

    async def call() -> str:
        cb._clock.now += seconds  # type: ignore[attr-defined]  # the test's clock
        if error is not None:
            raise error
        return "ok"

    async def guarded() -> object:
        try:
            return await cb.call_permitted(token, call)
        except Exception as raised:
            return raised

    return asyncio.run(guarded())


def events_of(cb: CircuitBreaker) -> list[TransitionEvent]:
    seen: list[TransitionEvent] = []
    cb.add_listener(seen.append)
    return seen


# --- CallNotPermittedExceptionTest ------------------------------------------------------------


def test_should_return_correct_message_when_state_is_forced_open(clock: Clock) -> None:
    """CallNotPermittedExceptionTest.shouldReturnCorrectMessageWhenStateIsForcedOpen; and the
    message is fixed when the call is rejected, not when it is printed."""
    cb = breaker(clock)
    cb.force_open()
    rejected = cb.rejection()
    assert (
        str(rejected)
        == "CircuitBreaker 'testName' is FORCED_OPEN and does not permit further calls"
    )
    assert rejected.causing_circuit_breaker_name == "testName"
    cb.close()
    assert "is FORCED_OPEN" in str(rejected)


# --- CircuitBreakerStateMachineTest ----------------------------------------------------------


def test_should_throw_call_not_permitted_exception_when_state_is_open(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldThrowCallNotPermittedExceptionWhenStateIsOpen"""
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, RuntimeError())
    assert cb.state is State.OPEN

    async def call() -> str:
        return "ok"

    with pytest.raises(CallNotPermittedError):
        asyncio.run(cb.call(call))
    assert cb.snapshot()["not_permitted_calls"] == 1


def test_should_open_after_failure_rate_threshold_exceeded(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldOpenAfterFailureRateThresholdExceeded: -1 below
    the minimum, then 60 % of 5 opens it."""
    cb = breaker(clock)
    for error in (RuntimeError(), None, RuntimeError(), None):
        outcome(cb, error)
        assert cb.window.failure_rate == -1.0
    assert cb.state is State.CLOSED
    outcome(cb, RuntimeError())
    assert cb.state is State.OPEN
    assert cb.snapshot()["failure_rate"] == 60.0


def test_opens_when_the_call_that_reaches_the_minimum_is_a_success(clock: Clock) -> None:
    """A mutation run found this unchecked: 3 failures of 5, the fifth a success."""
    cb = breaker(clock)
    for error in (RuntimeError(), RuntimeError(), RuntimeError(), None):
        outcome(cb, error)
    assert cb.state is State.CLOSED
    outcome(cb)
    assert cb.state is State.OPEN


def test_should_open_after_slow_call_rate_threshold_exceeded(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldOpenAfterSlowCallRateThresholdExceededUsingMockClock"""
    cb = breaker(clock, slow_call_duration_threshold=2.0, slow_call_rate_threshold=50.0)
    for seconds in (3.0, 0.5, 3.0, 0.5):
        outcome(cb, seconds=seconds)
    assert cb.state is State.CLOSED
    outcome(cb, seconds=3.0)
    assert cb.state is State.OPEN
    assert cb.snapshot()["slow_call_rate"] == 60.0


def test_slow_and_failed_calls_leaving_the_window_are_subtracted_back_to_zero(clock: Clock) -> None:
    """A mutation run found this unchecked."""
    cb = breaker(clock, minimum_number_of_calls=5, failure_rate_threshold=100.0)
    outcome(cb, RuntimeError(), seconds=3.0)  # failed and slow
    outcome(cb, seconds=3.0)  # slow
    for _ in range(5):
        outcome(cb)
    assert (cb.window.failed, cb.window.slow, cb.window.size) == (0, 0, 5)


def test_should_transition_to_half_open_after_wait_duration(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldTransitionToHalfOpenAfterWaitDuration: without
    `automaticTransitionFromOpenToHalfOpenEnabled` (its default) the first call after the wait
    moves it."""
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, RuntimeError())
    clock.now += 4.999
    assert outcome(cb) is None and cb.state is State.OPEN
    clock.now += 0.001
    assert outcome(cb) == "ok"
    assert cb.state is State.HALF_OPEN


def test_should_only_permit_the_half_open_calls(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldOnlyPermitFourCallsInHalfOpenState (here 2)."""
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, RuntimeError())
    clock.now += 5
    permits = [cb.permit() for _ in range(3)]
    assert permits[0] is not None and permits[1] is not None and permits[2] is None


def test_should_transition_back_to_open_when_failure_rate_is_above_threshold(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldTransitionBackToOpenStateWhenFailureRateIsAboveThreshold"""
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, RuntimeError())
    clock.now += 5
    outcome(cb, RuntimeError())
    outcome(cb)
    assert cb.state is State.OPEN


def test_should_transition_back_to_closed_when_failure_is_below_threshold(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldTransitionBackToClosedStateWhenFailureIsBelowThreshold"""
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, RuntimeError())
    clock.now += 5
    outcome(cb)
    outcome(cb)
    assert cb.state is State.CLOSED
    assert cb.window.size == 0


def test_should_release_permission_when_exception_ignored(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldReleasePermissionWhenExceptionIgnored; and with
    several trial calls one ignored lets another in (a mutant left it rejecting for ever)."""
    ignore = lambda error: Outcome.IGNORED if isinstance(error, BusinessError) else Outcome.FAILURE  # noqa: E731
    cb = breaker(clock, classifier=ignore)
    for _ in range(5):
        outcome(cb, RuntimeError())
    clock.now += 5
    outcome(cb, BusinessError())  # its permit is handed back
    assert cb.state is State.HALF_OPEN
    outcome(cb)
    outcome(cb)
    assert cb.state is State.CLOSED


def test_should_disable_circuit_breaker(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldDisableCircuitBreaker: every call permitted,
    nothing recorded."""
    cb = breaker(clock)
    cb.disable()
    for _ in range(10):
        outcome(cb, RuntimeError())
    assert cb.state is State.DISABLED
    assert cb.window.size == 0


def test_should_force_open_circuit_breaker(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldForceOpenCircuitBreaker"""
    cb = breaker(clock)
    cb.force_open()
    clock.now += 100
    assert outcome(cb) is None
    assert cb.state is State.FORCED_OPEN


def test_should_reset_closed_state(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldResetClosedState"""
    cb = breaker(clock)
    outcome(cb)
    outcome(cb)
    assert cb.window.size == 2
    cb.reset()
    assert cb.state is State.CLOSED
    assert cb.window.size == 0


def test_internal_transitions_publish_no_state_transition_event(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.
    circuitBreakerDoesNotPublishStateTransitionEventsForInternalTransitions"""
    cb = breaker(clock)
    seen = events_of(cb)
    cb.force_open()
    cb.force_open()
    cb.disable()
    cb.disable()
    cb.close()
    cb.close()
    assert [(e.from_state, e.to_state) for e in seen] == [
        (State.CLOSED, State.FORCED_OPEN),
        (State.FORCED_OPEN, State.DISABLED),
        (State.DISABLED, State.CLOSED),
    ]


# --- CircuitBreakerExceptionHandlingTest -----------------------------------------------------


def test_should_record_runtime_exception_as_failure_and_business_exception_as_success(
    clock: Clock,
) -> None:
    """CircuitBreakerExceptionHandlingTest.
    shouldRecordRuntimeExceptionAsFailureAndBusinessExceptionAsSuccess"""
    record = lambda error: Outcome.SUCCESS if isinstance(error, BusinessError) else Outcome.FAILURE  # noqa: E731
    cb = breaker(clock, classifier=record)
    outcome(cb, RuntimeError())
    outcome(cb, BusinessError())
    assert (cb.window.failed, cb.window.size) == (1, 2)
    assert (cb.stats.failed, cb.stats.successful) == (1, 1)


# --- CircuitBreakerConfigTest ------------------------------------------------------------------


def test_should_reduce_minimum_number_of_calls_to_sliding_window_size() -> None:
    """CircuitBreakerConfigTest.shouldReduceMinimumNumberOfCallsToSlidingWindowSize"""
    settings = BreakerSettings.defaults(sliding_window_size=5, minimum_number_of_calls=6)
    assert (settings.minimum_number_of_calls, settings.sliding_window_size) == (5, 5)


# --- the decorator path, and real calls without a time limit ---------------------------------


def test_the_decorator_path_while_open_rejects_without_calling(clock: Clock) -> None:
    """A mutation run found the decorator's own permit path unchecked while OPEN."""
    cb = breaker(clock)
    reached: list[int] = []

    @cb
    async def guarded() -> str:
        reached.append(1)
        return "ok"

    cb.force_open()
    with pytest.raises(CallNotPermittedError):
        asyncio.run(guarded())
    assert reached == []
    cb.close()
    assert asyncio.run(guarded()) == "ok" and reached == [1]


# --- CircuitBreakerEventPublisherTest, and the events endpoint --------------------------------


def kinds(cb: CircuitBreaker) -> list[str]:
    return [e.type.value for e in cb.events.recent]


def test_events_of_calls_rates_transitions_rejections_and_reset(clock: Clock) -> None:
    """CircuitBreakerEventPublisherTest: shouldConsumeOnSuccessEvent, shouldConsumeOnErrorEvent,
    shouldConsumeIgnoredErrorEvent, shouldConsumeOnStateTransitionEvent,
    shouldConsumeCallNotPermittedEvent, shouldConsumeOnResetEvent; FAILURE_RATE_EXCEEDED comes
    just before the transition it causes."""
    ignore = lambda error: Outcome.IGNORED if isinstance(error, BusinessError) else Outcome.FAILURE  # noqa: E731
    cb = breaker(clock, classifier=ignore, sliding_window_size=3, minimum_number_of_calls=3)
    outcome(cb)
    outcome(cb, BusinessError("not ours"))
    outcome(cb, OSError("BAM!"))
    outcome(cb, OSError("BAM!"))
    assert outcome(cb) is None
    cb.reset()
    assert kinds(cb) == [
        "SUCCESS",
        "IGNORED_ERROR",
        "ERROR",
        "ERROR",
        "FAILURE_RATE_EXCEEDED",
        "STATE_TRANSITION",
        "NOT_PERMITTED",
        "STATE_TRANSITION",
        "RESET",
    ]
    shown = [e.as_actuator() for e in cb.events.recent]
    assert shown[2]["errorMessage"] == "OSError: BAM!"
    assert shown[4]["failureRate"] == pytest.approx(200 / 3)
    assert [e["stateTransition"] for e in shown if e["type"] == "STATE_TRANSITION"] == [
        "CLOSED_TO_OPEN",
        "OPEN_TO_CLOSED",
    ]


def test_should_not_produce_events_in_disabled_state(clock: Clock) -> None:
    """CircuitBreakerEventPublisherTest.shouldNotProduceEventsInDisabledState"""
    cb = breaker(clock, sliding_window_size=1, minimum_number_of_calls=1)
    cb.disable()
    for error in (OSError("BAM!"), OSError("BAM!"), None, OSError("BAM!")):
        outcome(cb, error)
    assert kinds(cb) == ["STATE_TRANSITION"]


def test_the_buffer_is_bounded_and_keeps_transitions_apart(clock: Clock) -> None:
    """Resilience4j's eventConsumerBufferSize (100): a busy breaker's calls push out old
    events, but never the timeline's transitions."""
    cb = breaker(clock)
    cb.force_open()
    cb.close()
    for _ in range(150):
        outcome(cb)
    assert len(cb.events.recent) == 100 and set(kinds(cb)) == {"SUCCESS"}
    assert [e.transition for e in cb.events.transitions] == [
        "CLOSED_TO_FORCED_OPEN",
        "FORCED_OPEN_TO_CLOSED",
    ]


def test_the_events_endpoint_serves_them_as_actuator_does_to_the_admin_only(clock: Clock) -> None:
    """`GET /admin/breakers/{name}/events`, modelled on Actuator's `circuitbreakerevents`."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from service_kit.deps import ServiceState
    from service_kit.errors import install_error_handlers
    from service_kit.resilience.admin import breaker_admin_router

    cb = breaker(clock, name="storage")
    outcome(cb, OSError("BAM!"))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(breaker_admin_router())
    app.state.service = ServiceState(SecretStr("t0ken"), SimpleNamespace(breakers={"storage": cb}))
    client = TestClient(app)
    assert client.get("/admin/breakers/storage/events").status_code == 401
    answer = client.get(
        "/admin/breakers/storage/events", headers={"Authorization": "Bearer t0ken"}
    ).json()
    [event] = answer["circuitBreakerEvents"]
    assert event["circuitBreakerName"] == "storage" and event["type"] == "ERROR"
    assert set(event) == {
        "circuitBreakerName",
        "type",
        "creationTime",
        "durationInMs",
        "errorMessage",
    }
    missing = client.get("/admin/breakers/nope/events", headers={"Authorization": "Bearer t0ken"})
    assert missing.status_code == 404


# --- the rest of the state machine: manual transitions, waits, METRICS_ONLY, results --------


def test_should_increase_counter_on_release_permission(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldIncreaseCounterOnReleasePermission (2 trials here)."""
    cb = breaker(clock)
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()
    assert [cb.permit() is not None for _ in range(3)] == [True, True, False]
    cb.release_permission()
    assert cb.permit() is not None


def test_should_not_allow_transition_from_closed_to_half_open(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldNotAllowTransitionFromClosedToHalfOpen; and the
    two other transitions Resilience4j's StateTransition does not define."""
    cb = breaker(clock)
    with pytest.raises(IllegalStateTransition):
        cb.transition_to_half_open_state()
    cb.transition_to_metrics_only_state()
    with pytest.raises(IllegalStateTransition):
        cb.transition_to_open_state()
    with pytest.raises(IllegalStateTransition):
        cb.transition_to_half_open_state()
    assert cb.state is State.METRICS_ONLY


def test_should_transition_to_half_open_after_passed_wait_until(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldTransitionToHalfOpenAfterPassedWaitDuration and
    ...AfterPassedWaitUntil: OPEN for a given time, whatever the configured wait."""
    cb = breaker(clock)
    cb.transition_to_open_state_for(1800)
    clock.now += 900
    assert outcome(cb) is None and cb.state is State.OPEN
    clock.now += 901
    assert outcome(cb) == "ok" and cb.state is State.HALF_OPEN
    cb.transition_to_open_state_until(datetime.now(UTC) + timedelta(minutes=30))
    assert 1799 < cb.open_remaining <= 1800


def test_should_transition_to_half_open_after_wait_interval(clock: Clock) -> None:
    """CircuitBreakerStateMachineTest.shouldTransitionToHalfOpenAfterWaitInterval: each OPEN in
    a row waits 1.5 times longer (5 s, then 7.5 s)."""
    cb = breaker(clock, enable_exponential_backoff=True, exponential_backoff_multiplier=1.5)
    cb.transition_to_open_state()
    clock.now += 3
    assert outcome(cb) is None
    clock.now += 3
    assert outcome(cb) == "ok" and cb.state is State.HALF_OPEN
    cb.transition_to_open_state()
    clock.now += 6
    assert outcome(cb) is None
    clock.now += 5
    assert outcome(cb) == "ok" and cb.state is State.HALF_OPEN


def test_the_wait_is_capped_and_randomized_within_its_factor(clock: Clock) -> None:
    """Resilience4j's exponentialMaxWaitDurationInOpenState and randomizedWaitFactor."""
    cb = breaker(
        clock,
        enable_exponential_backoff=True,
        exponential_backoff_multiplier=10,
        exponential_max_wait_duration_in_open_state=20,
    )
    waits = []
    for _ in range(3):
        cb.transition_to_open_state()
        waits.append(cb.open_remaining)
    assert waits == [5.0, 20.0, 20.0]
    cb = breaker(clock, name="randomized", enable_randomized_wait=True, randomized_wait_factor=0.5)
    drawn = set()
    for _ in range(20):
        cb.transition_to_open_state()
        drawn.add(cb.open_remaining)
    assert all(2.5 <= wait <= 7.5 for wait in drawn) and len(drawn) > 1


def test_automatic_transition_from_open_to_half_open_without_a_call(clock: Clock) -> None:
    """CircuitBreakerAutoTransitionStateMachineTest: with the automatic transition, OPEN turns
    HALF_OPEN when the wait is over, with no call (here at the first look at the state)."""
    cb = breaker(clock, automatic_transition_from_open_to_half_open_enabled=True)
    seen = events_of(cb)
    cb.transition_to_open_state()
    clock.now += 5
    assert cb.state is State.HALF_OPEN
    assert [(e.from_state, e.to_state) for e in seen][-1] == (State.OPEN, State.HALF_OPEN)


def test_the_automatic_transition_also_happens_on_a_timer_of_the_running_loop() -> None:
    """Nobody looks at the state: a timer on the event loop moves it."""
    cb = CircuitBreaker(
        "timed",
        BreakerSettings.defaults(
            wait_duration_in_open_state=0.05,
            automatic_transition_from_open_to_half_open_enabled=True,
        ),
    )
    seen = events_of(cb)

    async def wait() -> None:
        cb.transition_to_open_state()
        await asyncio.sleep(0.2)

    asyncio.run(wait())
    assert [(e.from_state, e.to_state) for e in seen] == [
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
    ]


@pytest.mark.parametrize("after", ["OPEN", "CLOSED"])
def test_half_open_past_its_longest_wait_takes_the_configured_state(
    clock: Clock, after: str
) -> None:
    """CircuitBreakerStateMachineTest.circuitBreakerTransitionsToOpenAfterWaitDurationInHalfOpen
    State and ...ToClosedAfterWaitDurationInHalfOpenState."""
    cb = breaker(
        clock,
        max_wait_duration_in_half_open_state=1.0,
        transition_to_state_after_wait_duration=after,
    )
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()
    clock.now += 0.999
    assert cb.state is State.HALF_OPEN
    clock.now += 0.001
    assert cb.state is State[after]


@pytest.mark.parametrize("initial", ["CLOSED", "OPEN", "METRICS_ONLY"])
def test_circuit_breaker_initializes_in_the_configured_state(clock: Clock, initial: str) -> None:
    """CircuitBreakerStateMachineTest.circuitBreakerInitializeInClosedState, ...InOpenState,
    ...InMetricOnlyState."""
    assert breaker(clock, initial_state=initial).state is State[initial]


def test_should_record_metrics_in_metrics_only_state_and_publish_each_crossing_once(
    clock: Clock,
) -> None:
    """CircuitBreakerStateMachineTest.shouldRecordMetricsInMetricsOnlyState and
    shouldPublishEachEventOnceInMetricOnlyState: every call permitted and recorded, never a
    state change; FAILURE_RATE_EXCEEDED once per crossing."""
    cb = breaker(clock)
    cb.transition_to_metrics_only_state()
    for _ in range(8):
        assert isinstance(outcome(cb, RuntimeError()), RuntimeError)
    assert cb.state is State.METRICS_ONLY
    assert cb.window.failure_rate == 100.0
    assert kinds(cb).count("FAILURE_RATE_EXCEEDED") == 1
    for _ in range(5):
        outcome(cb)  # back under the threshold
    for _ in range(5):
        outcome(cb, RuntimeError())  # over it again
    assert kinds(cb).count("FAILURE_RATE_EXCEEDED") == 2


def test_should_record_specific_result_as_a_failure_and_any_other_as_success(clock: Clock) -> None:
    """CircuitBreakerResultHandlingTest.shouldRecordSpecificStringResultAsAFailureAndAnyOther
    AsSuccess: the value is still returned."""
    cb = CircuitBreaker(
        "results",
        BreakerSettings.defaults(sliding_window_size=5),
        clock=clock,
        result_is_failure=lambda result: result == "failure",
    )

    async def returns(value: str) -> str:
        return value

    assert asyncio.run(cb.call(returns, "failure")) == "failure"
    assert asyncio.run(cb.call(returns, "success")) == "success"
    assert (cb.window.failed, cb.window.size) == (1, 2)
    assert kinds(cb) == ["ERROR", "SUCCESS"]


# --- SlidingTimeWindowMetricsTest --------------------------------------------------------------


def test_a_time_based_window_holds_the_calls_of_the_last_seconds(clock: Clock) -> None:
    """SlidingTimeWindowMetricsTest.checkRecordingOfCallsOverTime (the idea: buckets of one
    second, the oldest dropped as time moves), through the breaker."""
    cb = breaker(
        clock, sliding_window_type="TIME_BASED", sliding_window_size=3, minimum_number_of_calls=2
    )
    outcome(cb, RuntimeError())
    clock.now += 1
    outcome(cb)
    assert (cb.window.size, cb.window.failed, cb.window.failure_rate) == (2, 1, 50.0)
    clock.now += 2  # the first call's second has left the window
    assert cb.snapshot()["buffered_calls"] == 1 and cb.window.failure_rate == -1.0
    clock.now += 1
    assert cb.snapshot()["buffered_calls"] == 0


def test_a_time_based_window_opens_on_its_rate_and_keeps_a_minimum_above_its_size(
    clock: Clock,
) -> None:
    cb = breaker(
        clock, sliding_window_type="TIME_BASED", sliding_window_size=2, minimum_number_of_calls=4
    )
    assert cb.settings.minimum_number_of_calls == 4  # not capped: a time window holds any count
    for _ in range(3):
        outcome(cb, RuntimeError())
    assert cb.state is State.CLOSED
    outcome(cb, RuntimeError())
    assert cb.state is State.OPEN


def test_the_slow_calls_series_splits_successful_and_failed() -> None:
    """resilience4j_circuitbreaker_slow_calls{kind=successful|failed} (TaggedCircuitBreaker
    MetricsTest.shouldAddMetricsForSlowCalls, in the Prometheus exporter)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from service_kit.resilience.metrics import track

    clock = Clock()
    cb = breaker(clock, name="slowish", slow_call_duration_threshold=1.0)
    registry = CollectorRegistry()
    track(cb, registry)
    outcome(cb, seconds=2.0)
    outcome(cb, RuntimeError(), seconds=2.0)
    outcome(cb, RuntimeError(), seconds=2.0)
    text = generate_latest(registry).decode()
    assert 'resilience4j_circuitbreaker_slow_calls{kind="successful",name="slowish"} 1.0' in text
    assert 'resilience4j_circuitbreaker_slow_calls{kind="failed",name="slowish"} 2.0' in text


# --- what a mutation run found unchecked (docs/mutation.md) ----------------------------------


def test_an_illegal_transition_names_the_breaker_and_both_states(clock: Clock) -> None:
    cb = breaker(clock, name="storage")
    with pytest.raises(IllegalStateTransition, match=r"^storage: CLOSED to HALF_OPEN$"):
        cb.transition_to_half_open_state()


def test_the_openings_in_a_row_count_again_from_one_once_the_breaker_closes(clock: Clock) -> None:
    """The exponential wait grows with each OPEN in a row (5 s, 7.5 s); closing ends the run,
    so the next OPEN waits the first interval again."""
    cb = breaker(clock, enable_exponential_backoff=True, exponential_backoff_multiplier=1.5)
    cb.transition_to_open_state()
    assert cb.open_remaining == 5.0
    cb.transition_to_open_state()
    assert cb.open_remaining == 7.5
    cb.close()
    cb.transition_to_open_state()
    assert cb.open_remaining == 5.0


def test_a_transition_event_carries_the_rates_of_the_window_that_caused_it(clock: Clock) -> None:
    cb = breaker(clock)
    for _ in range(5):
        outcome(cb, OSError("BAM!"))
    [opened] = [e for e in cb.events.recent if e.transition == "CLOSED_TO_OPEN"]
    assert (opened.failure_rate, opened.slow_call_rate) == (100.0, 0.0)


def test_metrics_only_publishes_a_crossing_again_after_a_reset(clock: Clock) -> None:
    """METRICS_ONLY publishes each crossing of a threshold once; entering it again (a reset)
    starts over, so the next crossing is published too, even by the window's first call."""
    cb = breaker(clock, minimum_number_of_calls=1)
    cb.transition_to_metrics_only_state()

    def crossings() -> int:
        return sum(e.type.value == "FAILURE_RATE_EXCEEDED" for e in cb.events.recent)

    for _ in range(3):
        outcome(cb, OSError("BAM!"))
    assert crossings() == 1
    cb.transition_to_metrics_only_state()
    outcome(cb, OSError("BAM!"))
    assert crossings() == 2


def test_a_rate_exactly_at_its_threshold_is_published_as_exceeded(clock: Clock) -> None:
    """Resilience4j opens when a rate is equal to or greater than its threshold; the
    *_RATE_EXCEEDED events it publishes first say so with the rate."""
    cb = breaker(clock, sliding_window_size=4, minimum_number_of_calls=4)
    for error in (RuntimeError(), None, RuntimeError(), None):
        outcome(cb, error)
    [exceeded] = [e for e in cb.events.recent if e.type.value == "FAILURE_RATE_EXCEEDED"]
    assert exceeded.failure_rate == 50.0 and cb.state is State.OPEN
    slow = breaker(
        clock, name="slow", slow_call_duration_threshold=2.0, slow_call_rate_threshold=100.0
    )
    for _ in range(5):
        outcome(slow, seconds=3.0)
    [exceeded] = [e for e in slow.events.recent if e.type.value == "SLOW_CALL_RATE_EXCEEDED"]
    assert exceeded.slow_call_rate == 100.0 and slow.state is State.OPEN


def test_the_seconds_of_ignored_errors_add_up(clock: Clock) -> None:
    ignore = lambda error: Outcome.IGNORED if isinstance(error, BusinessError) else Outcome.FAILURE  # noqa: E731
    cb = breaker(clock, classifier=ignore)
    outcome(cb, BusinessError(), seconds=1.5)
    outcome(cb, BusinessError(), seconds=2.0)
    assert (cb.stats.ignored, cb.stats.ignored_seconds) == (2, 3.5)


# --- what the second mutation run found unchecked (docs/mutation.md) --------------------------


def ignoring_business_errors(error: BaseException) -> Outcome:
    return Outcome.IGNORED if isinstance(error, BusinessError) else Outcome.FAILURE


def permits_left(cb: CircuitBreaker) -> int:
    """How many more trial calls HALF_OPEN lets in now (each permit taken is kept)."""
    taken = 0
    while cb.permit() is not None:
        taken += 1
    return taken


def test_each_calls_duration_is_in_its_event_and_in_the_bounded_history(clock: Clock) -> None:
    cb = breaker(clock, event_consumer_buffer_size=3)
    for seconds, error in ((0.25, None), (0.5, RuntimeError()), (0.75, None), (1.0, None)):
        outcome(cb, error, seconds)
    assert [e.duration for e in cb.events.recent] == [0.5, 0.75, 1.0]  # the buffer's size
    assert list(cb.durations) == [0.25, 0.5, 0.75, 1.0]
    for _ in range(600):
        outcome(cb)
    assert len(cb.durations) == 500  # the dashboard's percentiles: the latest 500


def test_a_result_recorded_as_a_failure_is_named_in_its_event(clock: Clock) -> None:
    cb = CircuitBreaker(
        "results",
        BreakerSettings.defaults(),
        clock=clock,
        result_is_failure=lambda result: result == "failure",
    )

    async def returns(value: str) -> str:
        return value

    asyncio.run(cb.call(returns, "failure"))
    [event] = cb.events.recent
    assert event.error == "ResultRecordedAsFailure: result recorded as a failure: 'failure'"


def test_a_failure_exactly_at_the_slow_threshold_is_not_slow(clock: Clock) -> None:
    """Resilience4j counts a call as slow when it takes longer than the threshold."""
    cb = breaker(clock, slow_call_duration_threshold=2.0, minimum_number_of_calls=1)
    outcome(cb, RuntimeError(), seconds=2.0)
    assert cb.window.slow_call_rate == 0.0


def test_metrics_only_publishes_a_crossing_again_after_successes_bring_the_rate_under(
    clock: Clock,
) -> None:
    """With more calls in the window than its minimum, a fast success is evaluated in
    METRICS_ONLY too: back under the threshold, the next crossing is published again."""
    cb = breaker(clock, sliding_window_size=10, minimum_number_of_calls=2)
    cb.transition_to_metrics_only_state()
    for error in (RuntimeError(), RuntimeError(), None, RuntimeError()):  # 100 %, 67 %, 75 %
        outcome(cb, error)
    assert kinds(cb).count("FAILURE_RATE_EXCEEDED") == 1
    outcome(cb)  # 60 %
    outcome(cb)  # 50 %: still exceeded, not a new crossing
    assert kinds(cb).count("FAILURE_RATE_EXCEEDED") == 1
    cb.transition_to_metrics_only_state()
    for error in (RuntimeError(), RuntimeError(), None):  # 100 %, 100 %, then 67 % after a success
        outcome(cb, error)
    outcome(cb)  # 50 %
    outcome(cb)  # 40 %: under
    outcome(cb, RuntimeError())  # 50 %: over again, published again
    assert kinds(cb).count("FAILURE_RATE_EXCEEDED") == 3


def test_a_released_or_ignored_trial_gives_back_exactly_one_permit(clock: Clock) -> None:
    cb = breaker(clock, classifier=ignoring_business_errors)  # two trial calls
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()
    assert cb.permit() is not None
    cb.release_permission()
    assert permits_left(cb) == 2
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()
    assert isinstance(outcome(cb, BusinessError()), BusinessError)
    assert permits_left(cb) == 2


def test_an_ignored_error_of_a_call_from_before_half_open_frees_no_permit(clock: Clock) -> None:
    cb = breaker(clock, classifier=ignoring_business_errors)
    stale = cb.permit()  # taken while CLOSED
    assert stale is not None
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()

    async def business_error() -> None:
        raise BusinessError()

    with pytest.raises(BusinessError):
        asyncio.run(cb.call_permitted(stale, business_error))
    assert permits_left(cb) == 2


def test_a_call_from_two_transitions_ago_does_not_count(clock: Clock) -> None:
    cb = breaker(clock)
    cb.transition_to_open_state()
    cb.transition_to_half_open_state()
    stale = cb.permit()
    assert stale is not None
    cb.close()

    async def failing() -> None:
        raise RuntimeError()

    with pytest.raises(RuntimeError):
        asyncio.run(cb.call_permitted(stale, failing))
    assert cb.window.size == 0


@pytest.mark.parametrize("how", ["for", "until"])
def test_opening_for_a_while_is_refused_from_metrics_only(clock: Clock, how: str) -> None:
    """CircuitBreakerStateMachineTest: METRICS_ONLY to OPEN is not a manual transition."""
    cb = breaker(clock, initial_state="METRICS_ONLY")
    with pytest.raises(IllegalStateTransition):
        if how == "for":
            cb.transition_to_open_state_for(5.0)
        else:
            cb.transition_to_open_state_until(datetime.now(UTC) + timedelta(seconds=5))


def test_open_until_an_instant_already_past_lets_a_trial_call_in_at_once(clock: Clock) -> None:
    cb = breaker(clock)
    cb.transition_to_open_state_until(datetime.now(UTC) - timedelta(seconds=5))
    assert cb.state is State.OPEN
    assert cb.permit() is not None and cb.state is State.HALF_OPEN


def test_only_async_functions_can_be_guarded_and_the_refusal_says_so(clock: Clock) -> None:
    with pytest.raises(TypeError, match=r"^testName: only async functions can be guarded$"):
        breaker(clock)(lambda: None)  # type: ignore[arg-type, return-value]  # the point
