"""A Resilience4j-style circuit breaker for `async def` calls, composed with `circuitbreaker`.

Why hand-written: `circuitbreaker` counts consecutive failures only, lets every caller through
when half-open, calls its fallback only while open and counts a cancellation as a success. No
Python library offers Resilience4j's sliding windows with failure- and slow-call-rate
thresholds and a fixed number of half-open trial calls, so this module writes those rules and
uses of `circuitbreaker` only what fits them: its registry (`CircuitBreakerMonitor`, which
lists our breakers beside any of its own) and its error type (our rejection is one).

States: CLOSED -(rate >= threshold)-> OPEN -(wait elapsed)-> HALF_OPEN -(trial calls done)->
CLOSED or OPEN; plus the manual FORCED_OPEN, DISABLED and METRICS_ONLY.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import circuitbreaker

from service_kit.resilience.config import BreakerSettings
from service_kit.resilience.events import BreakerEvents, EventType
from service_kit.resilience.interval import interval_of
from service_kit.resilience.outcome import Classifier, Outcome, default_classifier
from service_kit.resilience.state import (
    CallNotPermittedError,
    ResultRecordedAsFailure,
    State,
    TransitionEvent,
    TransitionListener,
    publish,
)
from service_kit.resilience.window import CountWindow, TimeWindow

P = ParamSpec("P")
T = TypeVar("T")

_UNRECORDED = -1  # permit token of a call made while DISABLED: nothing about it is recorded
# The transitions Resilience4j's `StateTransition` does not define (IllegalStateException there).
ILLEGAL_TRANSITIONS = frozenset(
    {
        (State.CLOSED, State.HALF_OPEN),
        (State.METRICS_ONLY, State.OPEN),
        (State.METRICS_ONLY, State.HALF_OPEN),
    }
)


class IllegalStateTransition(ValueError):
    """A manual transition Resilience4j does not allow (CLOSED to HALF_OPEN, say)."""


class CallStats:
    """Call counts and total seconds per outcome kind since the breaker was created."""

    __slots__ = (
        "failed",
        "failed_seconds",
        "ignored",
        "ignored_seconds",
        "not_permitted",
        "successful",
        "successful_seconds",
    )

    def __init__(self) -> None:
        self.successful = self.failed = self.ignored = self.not_permitted = 0
        self.successful_seconds = self.failed_seconds = self.ignored_seconds = 0.0


class CircuitBreaker:
    """Guards async calls: `await breaker.call(fn, *args)` or decorate with `@breaker`.

    Single-threaded asyncio needs no lock: between checking the state and taking a permit
    there is no `await`, so no other task can interleave.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        classifier: Classifier = default_classifier,
        clock: Callable[[], float] = time.monotonic,
        result_is_failure: Callable[[Any], bool] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`result_is_failure`: a returned value it says True of counts as a failure
        (Resilience4j's `recordResult`). `rng` draws the randomized wait in OPEN."""
        self.name = name
        self.settings = settings = settings or BreakerSettings.defaults()
        self.classify = classifier
        self.result_is_failure = result_is_failure
        self._clock = clock
        self._rng = rng or random.Random()
        self._open_interval = interval_of(
            settings,
            settings.wait_duration_in_open_state,
            settings.exponential_max_wait_duration_in_open_state,
        )
        self._slow_threshold = settings.slow_call_duration_threshold
        self._failure_rate_threshold = settings.failure_rate_threshold
        self._slow_rate_threshold = settings.slow_call_rate_threshold
        self._listeners: list[TransitionListener] = []
        self._state = State.CLOSED
        self._generation = 0  # bumped on every transition; results of older calls are dropped
        self._open_until = 0.0
        self._opened_in_a_row = 0  # for the exponential wait; back to 0 when CLOSED
        self._half_open_until = math.inf
        self._half_open_permits = 0
        self._exceeded_published = False  # METRICS_ONLY publishes each crossing once
        self.window = self._new_window(State.CLOSED)
        self.stats = CallStats()
        self.events = BreakerEvents(name, settings.event_consumer_buffer_size)
        # The latest permitted calls' durations, for the dashboard's percentiles.
        self.durations: deque[float] = deque(maxlen=500)
        circuitbreaker.CircuitBreakerMonitor.register(self)
        if settings.initial_state != "CLOSED":
            self._transition(State[settings.initial_state])

    # -- calling --------------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` under the breaker; raise `CallNotPermittedError` if it may not run now.

        The breaker sets no deadline: a `TimeLimiter` inside it does (`call_with_fallback`).
        """
        token = self.permit()
        if token is None:
            raise CallNotPermittedError(self)
        return await self.call_permitted(token, fn, *args, **kwargs)

    def rejection(self) -> CallNotPermittedError:
        """The error that says why a call is rejected now, for callers that answer a rejection
        without raising it (`call_with_fallback`)."""
        return CallNotPermittedError(self)

    def permit(self) -> int | None:
        """A permit for one call now (pass it to `call_permitted`), or None if the breaker
        rejects the call (counted as not permitted). For callers with their own answer to a
        rejection, which then costs no exception (`call_with_fallback`)."""
        return self._generation if self._state is State.CLOSED else self._acquire_permission()

    async def call_permitted(
        self, token: int, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn` on a permit from `permit()`, recorded as `call` does."""
        clock = self._clock
        started = clock()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as error:
            self._on_error(token, error, clock() - started)
            raise
        elapsed = clock() - started
        if self.result_is_failure is not None and self.result_is_failure(result):
            self._on_error(token, ResultRecordedAsFailure(result), elapsed)
        else:
            self._on_success(token, elapsed)
        return result

    def __call__(self, function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        """`@breaker` on an `async def`: each call goes through `call`."""
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"{self.name}: only async functions can be guarded")

        @functools.wraps(function)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(function, *args, **kwargs)

        return guarded

    # -- permits and outcomes -------------------------------------------------------------

    def _acquire_permission(self) -> int | None:
        """The permit token for a call in a non-CLOSED state, or None (counted as rejected)."""
        state = self._state
        if state is State.DISABLED:
            return _UNRECORDED
        if state is State.METRICS_ONLY:
            return self._generation
        if state is State.OPEN and self._clock() >= self._open_until:
            self._transition(State.HALF_OPEN)
        state = self.state  # a HALF_OPEN past its longest wait moves on
        if state is State.HALF_OPEN and self._half_open_permits > 0:
            self._half_open_permits -= 1
            return self._generation
        self.stats.not_permitted += 1
        self.events.publish(EventType.NOT_PERMITTED)
        return None

    def _on_success(self, token: int, elapsed: float) -> None:
        if token == _UNRECORDED:  # DISABLED: no count, no event (shouldNotProduceEventsIn...)
            return
        self.events.call(EventType.SUCCESS, elapsed)
        stats = self.stats
        stats.successful += 1
        stats.successful_seconds += elapsed
        self.durations.append(elapsed)
        if token == self._generation:
            slow = elapsed > self._slow_threshold
            window = self.window
            window.record(False, slow)
            # A fast success in CLOSED lowers both rates once the window holds enough calls, and
            # they were below the thresholds (or it would be OPEN): nothing to decide. This is
            # the common call, so it skips the evaluation.
            if slow or window.size <= window.minimum or self._state is not State.CLOSED:
                self._evaluate()

    def _on_error(self, token: int, error: BaseException, elapsed: float) -> None:
        if token == _UNRECORDED:
            return
        outcome = self.classify(error)
        if outcome is not Outcome.SUCCESS:
            kind = EventType.ERROR if outcome is Outcome.FAILURE else EventType.IGNORED_ERROR
            self.events.call(kind, elapsed, error)
        stats = self.stats
        if outcome is Outcome.SUCCESS:
            # An error not recorded as a failure counts as a success, as in Resilience4j
            # (`CircuitBreakerExceptionHandlingTest`): the dependency did answer.
            self._on_success(token, elapsed)
            return
        self.durations.append(elapsed)
        if outcome is Outcome.FAILURE:
            stats.failed += 1
            stats.failed_seconds += elapsed
            if token == self._generation:
                self.window.record(True, elapsed > self._slow_threshold)
                self._evaluate()
        else:
            stats.ignored += 1
            stats.ignored_seconds += elapsed
            if token == self._generation and self._state is State.HALF_OPEN:
                self._half_open_permits += 1  # the trial did not count: let another one in

    def release_permission(self) -> None:
        """Hand back a permit taken with `permit()` for a call that will not be made
        (Resilience4j's `releasePermission`: another trial call may go in its place)."""
        if self._state is State.HALF_OPEN:
            self._half_open_permits += 1

    def _evaluate(self) -> None:
        window = self.window
        if self._state is State.HALF_OPEN and window.size < window.capacity:
            return  # trial calls still outstanding
        if self._state is State.METRICS_ONLY:
            self._publish_each_crossing_once(window)
            return
        if window.exceeds(self._failure_rate_threshold, self._slow_rate_threshold):
            self._publish_exceeded(window)
            self._transition(State.OPEN)
        elif self._state is State.HALF_OPEN:
            self._transition(State.CLOSED)

    def _publish_exceeded(self, window: CountWindow | TimeWindow) -> None:
        """FAILURE_RATE_EXCEEDED and/or SLOW_CALL_RATE_EXCEEDED, as Resilience4j publishes them
        before the transition to OPEN."""
        if window.failure_rate >= self._failure_rate_threshold:
            self.events.publish(EventType.FAILURE_RATE_EXCEEDED, failure_rate=window.failure_rate)
        if window.slow_call_rate >= self._slow_rate_threshold:
            rate = window.slow_call_rate
            self.events.publish(EventType.SLOW_CALL_RATE_EXCEEDED, slow_call_rate=rate)

    def _publish_each_crossing_once(self, window: CountWindow | TimeWindow) -> None:
        exceeds = window.exceeds(self._failure_rate_threshold, self._slow_rate_threshold)
        if exceeds and not self._exceeded_published:
            self._publish_exceeded(window)
        self._exceeded_published = exceeds

    # -- transitions ----------------------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until `close()` (or another manual transition)."""
        self._transition(State.FORCED_OPEN)

    def transition_to_open_state(self) -> None:
        """OPEN for the configured wait (raises IllegalStateTransition from METRICS_ONLY)."""
        self._transition(State.OPEN, manual=True)

    def transition_to_open_state_for(self, seconds: float) -> None:
        """OPEN for `seconds`, whatever the configured wait."""
        self._transition(State.OPEN, manual=True, open_for=seconds)

    def transition_to_open_state_until(self, until: datetime) -> None:
        """OPEN until the wall-clock instant `until`."""
        seconds = (until - datetime.now(UTC)).total_seconds()
        self._transition(State.OPEN, manual=True, open_for=max(0.0, seconds))

    def transition_to_half_open_state(self) -> None:
        """HALF_OPEN now (raises IllegalStateTransition from CLOSED or METRICS_ONLY)."""
        self._transition(State.HALF_OPEN, manual=True)

    def transition_to_metrics_only_state(self) -> None:
        """Permit every call, record it and publish its events, never change state."""
        self._transition(State.METRICS_ONLY)

    def close(self) -> None:
        """Go to CLOSED with an empty window, from any state."""
        self._transition(State.CLOSED)

    def disable(self) -> None:
        """Permit every call and record nothing."""
        self._transition(State.DISABLED)

    def reset(self) -> None:
        """CLOSED with an empty window, then a RESET event (Resilience4j's `reset()`)."""
        self.close()
        self.events.publish(EventType.RESET)

    def add_listener(self, listener: TransitionListener) -> None:
        """Call `listener(event)` after every state transition (exceptions are logged)."""
        self._listeners.append(listener)

    def _new_window(self, state: State) -> CountWindow | TimeWindow:
        settings = self.settings
        if state is State.HALF_OPEN:
            trials = settings.permitted_number_of_calls_in_half_open_state
            return CountWindow(trials, trials)
        size, minimum = settings.sliding_window_size, settings.minimum_number_of_calls
        if settings.sliding_window_type == "TIME_BASED":
            return TimeWindow(size, minimum, self._clock)
        return CountWindow(size, minimum)

    def _wait_in_open_state(self) -> float:
        """The wait of this OPEN: constant, or growing with each OPEN in a row, randomized or
        not (Resilience4j's `waitIntervalFunctionInOpenState`)."""
        return self._open_interval(self._opened_in_a_row, self._rng)

    def _transition(
        self, to_state: State, manual: bool = False, open_for: float | None = None
    ) -> None:
        """Enter `to_state` with a fresh window. One to the same state (closing a CLOSED
        breaker) resets it without publishing a transition, as Resilience4j's internal
        transitions do (CircuitBreakerStateMachineTest, "DoesNotPublishStateTransition
        EventsForInternalTransitions")."""
        if manual and (self._state, to_state) in ILLEGAL_TRANSITIONS:
            raise IllegalStateTransition(f"{self.name}: {self._state.name} to {to_state.name}")
        window = self.window
        event = TransitionEvent(
            self.name, self._state, to_state, window.failure_rate, window.slow_call_rate
        )
        internal = to_state is self._state
        self._state = to_state
        self._generation += 1
        self._exceeded_published = False
        self._opened_in_a_row = (
            self._opened_in_a_row + 1
            if to_state is State.OPEN
            else (0 if to_state is State.CLOSED else self._opened_in_a_row)
        )
        if to_state is State.OPEN:
            wait = self._wait_in_open_state() if open_for is None else open_for
            self._open_until = self._clock() + wait
            self._schedule_half_open(wait)
        else:  # OPEN keeps the window that opened it, so health checks can show why
            self.window = self._new_window(to_state)
        half_open_wait = self.settings.max_wait_duration_in_half_open_state
        self._half_open_until = (
            self._clock() + half_open_wait
            if to_state is State.HALF_OPEN and half_open_wait > 0
            else math.inf
        )
        self._half_open_permits = self.window.capacity if to_state is State.HALF_OPEN else 0
        if not internal:
            self.events.publish(
                EventType.STATE_TRANSITION,
                transition=f"{event.from_state.name}_TO_{to_state.name}",
                failure_rate=event.failure_rate,
                slow_call_rate=event.slow_call_rate,
            )
            publish(event, self._listeners)

    def _schedule_half_open(self, wait: float) -> None:
        """With automatic transitions, OPEN turns HALF_OPEN when the wait is over: at a timer
        on the running loop, or at the first look at `state` after it, whichever comes first."""
        if not self.settings.automatic_transition_from_open_to_half_open_enabled:
            return
        with contextlib.suppress(RuntimeError):  # no loop running: `state` does it
            asyncio.get_running_loop().call_later(wait, lambda: self.state)

    # -- reading --------------------------------------------------------------------------

    @property
    def state(self) -> State:
        """The current state, after the transitions time makes: with automatic transitions
        an OPEN past its wait is HALF_OPEN; a HALF_OPEN past `max_wait_duration_in_half_open_
        state` takes `transition_to_state_after_wait_duration`. Without automatic transitions
        OPEN turns HALF_OPEN at the first call after the wait, as in Resilience4j."""
        state = self._state
        if (
            state is State.OPEN
            and self.settings.automatic_transition_from_open_to_half_open_enabled
        ):
            if self._clock() >= self._open_until:
                self._transition(State.HALF_OPEN)
        elif state is State.HALF_OPEN and self._clock() >= self._half_open_until:
            self._transition(State[self.settings.transition_to_state_after_wait_duration])
        return self._state

    @property
    def opened(self) -> bool:  # used by CircuitBreakerMonitor.get_open / all_closed
        return self._state is State.OPEN or self._state is State.FORCED_OPEN

    @property
    def closed(self) -> bool:
        return self._state is State.CLOSED

    @property
    def open_remaining(self) -> float:
        """Seconds until an OPEN breaker admits trial calls (0 when not OPEN)."""
        if self._state is not State.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    @property
    def failure_count(self) -> int:
        return self.window.failed

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary for health endpoints; rates are -1.0 until enough calls."""
        window = self.window
        window.expire()
        return {
            "name": self.name,
            "state": self._state.name,
            "failure_rate": window.failure_rate,
            "slow_call_rate": window.slow_call_rate,
            "buffered_calls": window.size,
            "failed_calls": window.failed,
            "slow_calls": window.slow,
            "not_permitted_calls": self.stats.not_permitted,
        }
