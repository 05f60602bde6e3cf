"""Breaker states, transition events (logged, and sent to listeners), the rejection error."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import circuitbreaker
import structlog


class State(enum.StrEnum):
    """Values match `circuitbreaker.STATE_*` and the `state` label Micrometer exports."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


class CallNotPermittedError(circuitbreaker.CircuitBreakerError):  # type: ignore[misc]  # untyped base
    """The breaker rejected the call without running it (OPEN, FORCED_OPEN, or no trial left).

    Like Resilience4j's CallNotPermittedException: the message is fixed when the call is
    rejected (a later transition does not change it), and `causing_circuit_breaker_name` names
    the breaker that rejected it."""

    def __init__(self, circuit_breaker: Any) -> None:
        super().__init__(circuit_breaker)
        self.causing_circuit_breaker_name: str = circuit_breaker.name
        self.message = (
            f"CircuitBreaker '{circuit_breaker.name}' is {circuit_breaker.state.name} "
            "and does not permit further calls"
        )

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    breaker: str
    from_state: State
    to_state: State
    failure_rate: float  # of the window being left; -1.0 if it held too few calls
    slow_call_rate: float


TransitionListener = Callable[[TransitionEvent], None]


def publish(event: TransitionEvent, listeners: list[TransitionListener]) -> None:
    """Log `event` as one line, then hand it to each listener; a failing listener is logged."""
    # A fresh logger per (rare) event, so a cached logger never outlives reconfiguration.
    log = structlog.get_logger("service_kit.resilience")
    log.info(
        "circuit_breaker_transition",
        breaker=event.breaker,
        from_state=event.from_state.name,
        to_state=event.to_state.name,
        failure_rate=event.failure_rate,
        slow_call_rate=event.slow_call_rate,
    )
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            log.exception("circuit_breaker_listener_failed", breaker=event.breaker)


class ResultRecordedAsFailure(Exception):
    """A call returned a value the breaker's `result_is_failure` counts as a failure."""

    def __init__(self, result: Any) -> None:
        super().__init__(f"result recorded as a failure: {result!r}"[:200])
        self.result = result
