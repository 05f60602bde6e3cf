"""The breaker against a small reference model of Resilience4j's count-based state machine.

Hypothesis drives random sequences of calls (succeeding, failing, ignored; fast or slow), clock
moves and manual transitions, and after every step the breaker must agree with the model on the
state, the calls in the window, and the rejected calls. The model is written from Resilience4j's
documentation ("CircuitBreaker", resilience4j.readme.io), not from our code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

import circuitbreaker
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from service_kit.resilience import BreakerSettings, CircuitBreaker, Outcome, State
from service_kit.resilience.breaker import IllegalStateTransition

SIZE, MINIMUM, TRIALS, WAIT, SLOW = 4, 2, 2, 5.0, 1.0
RATE = 50.0


class Ignored(Exception):
    pass


def classify(error: BaseException) -> Outcome:
    return Outcome.IGNORED if isinstance(error, Ignored) else Outcome.FAILURE


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Model:
    """What Resilience4j's documentation says should happen, in the plainest code."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.state = State.CLOSED
        self.window: deque[tuple[bool, bool]] = deque(maxlen=SIZE)
        self.permits = 0
        self.open_until = 0.0
        self.not_permitted = 0

    def enter(self, state: State) -> None:
        self.state = state
        if state is State.OPEN:
            self.open_until = self.clock.now + WAIT
        else:
            self.window = deque(maxlen=TRIALS if state is State.HALF_OPEN else SIZE)
        self.permits = TRIALS if state is State.HALF_OPEN else 0

    def exceeds(self) -> bool:
        size = len(self.window)
        failed = sum(f for f, _ in self.window)
        slow = sum(s for _, s in self.window)
        minimum = TRIALS if self.state is State.HALF_OPEN else MINIMUM
        return size >= minimum and (failed * 100 >= RATE * size or slow * 100 >= RATE * size)

    def permit(self) -> bool:
        """May a call run now? (It then runs, and `record` is told how it went.)"""
        if self.state is State.OPEN and self.clock.now >= self.open_until:
            self.enter(State.HALF_OPEN)
        if self.state in (State.OPEN, State.FORCED_OPEN) or (
            self.state is State.HALF_OPEN and self.permits == 0
        ):
            self.not_permitted += 1
            return False
        if self.state is State.HALF_OPEN:
            self.permits -= 1
        return True

    def record(self, kind: str, seconds: float) -> None:
        if self.state is State.DISABLED:
            return
        if kind == "ignored":
            if self.state is State.HALF_OPEN:
                self.permits += 1  # the trial did not count: another may go in
            return
        self.window.append((kind == "failure", seconds > SLOW))
        if self.state is State.METRICS_ONLY:
            return
        if self.state is State.HALF_OPEN and len(self.window) < TRIALS:
            return
        if self.exceeds():
            self.enter(State.OPEN)
        elif self.state is State.HALF_OPEN:
            self.enter(State.CLOSED)


class BreakerAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        circuitbreaker.CircuitBreakerMonitor.circuit_breakers = {}
        self.clock = Clock()
        self.model = Model(self.clock)
        self.breaker = CircuitBreaker(
            "model",
            BreakerSettings.defaults(
                sliding_window_size=SIZE,
                minimum_number_of_calls=MINIMUM,
                permitted_number_of_calls_in_half_open_state=TRIALS,
                wait_duration_in_open_state=WAIT,
                failure_rate_threshold=RATE,
                slow_call_rate_threshold=RATE,
                slow_call_duration_threshold=SLOW,
            ),
            classifier=classify,
            clock=self.clock,
        )

    @rule(kind=st.sampled_from(["success", "failure", "ignored"]), slow=st.booleans())
    def call(self, kind: str, slow: bool) -> None:
        seconds = 2.0 if slow else 0.0
        permitted = self.model.permit()
        ran: list[bool] = []

        async def work() -> str:
            ran.append(True)
            self.clock.now += seconds
            if kind == "failure":
                raise RuntimeError("down")
            if kind == "ignored":
                raise Ignored()
            return "ok"

        async def guarded() -> None:
            with contextlib.suppress(Exception):
                await self.breaker.call(work)

        asyncio.run(guarded())
        assert bool(ran) == permitted, (kind, self.model.state)
        if permitted:
            self.model.record(kind, seconds)

    @rule(seconds=st.sampled_from([1.0, 2.5, 5.0, 6.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def close(self) -> None:
        self.breaker.close()
        self.model.enter(State.CLOSED)

    @rule()
    def force_open(self) -> None:
        self.breaker.force_open()
        self.model.enter(State.FORCED_OPEN)

    @rule()
    def disable(self) -> None:
        self.breaker.disable()
        self.model.enter(State.DISABLED)

    @rule()
    def metrics_only(self) -> None:
        self.breaker.transition_to_metrics_only_state()
        self.model.enter(State.METRICS_ONLY)

    @rule()
    def open(self) -> None:
        if self.model.state is State.METRICS_ONLY:
            try:
                self.breaker.transition_to_open_state()
            except IllegalStateTransition:
                return
            raise AssertionError("METRICS_ONLY to OPEN must be refused")
        self.breaker.transition_to_open_state()
        self.model.enter(State.OPEN)

    @precondition(lambda self: self.model.state not in (State.CLOSED, State.METRICS_ONLY))
    @rule()
    def half_open(self) -> None:
        self.breaker.transition_to_half_open_state()
        self.model.enter(State.HALF_OPEN)

    @invariant()
    def agrees_with_the_model(self) -> None:
        breaker, model = self.breaker, self.model
        assert breaker.state is model.state
        assert breaker.stats.not_permitted == model.not_permitted
        if model.state not in (State.OPEN, State.DISABLED, State.FORCED_OPEN):
            window = breaker.window
            assert window.size == len(model.window)
            assert window.failed == sum(f for f, _ in model.window)
            assert window.slow == sum(s for _, s in model.window)


BreakerAgainstModel.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestBreakerAgainstModel = BreakerAgainstModel.TestCase
