"""The events a breaker publishes, as Resilience4j's CircuitBreaker does, kept in bounded buffers.

Types and fields follow Resilience4j's `CircuitBreakerEvent` and Spring Boot Actuator's
`circuitbreakerevents` endpoint, which `GET /admin/breakers/{name}/events` serves in the same
shape: a call's SUCCESS, ERROR, IGNORED_ERROR or NOT_PERMITTED; STATE_TRANSITION; RESET;
FAILURE_RATE_EXCEEDED and SLOW_CALL_RATE_EXCEEDED (just before the transition they cause).
The other decorators (Retry, TimeLimiter, Bulkhead) keep theirs in an `EventLog` each, served
by `GET /admin/{retries,timelimiters,bulkheads}/{name}/events` in Actuator's shape.

`recent` keeps the last `EVENT_BUFFER_SIZE` events of any type (Resilience4j's
`eventConsumerBufferSize`, 100 by default); `transitions` keeps the last 20 transitions on their
own, so a busy breaker's calls never push its timeline (the dashboard's) out.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

EVENT_BUFFER_SIZE = 100
KEPT_TRANSITIONS = 20


class EventType(enum.StrEnum):
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    IGNORED_ERROR = "IGNORED_ERROR"
    NOT_PERMITTED = "NOT_PERMITTED"
    STATE_TRANSITION = "STATE_TRANSITION"
    RESET = "RESET"
    FAILURE_RATE_EXCEEDED = "FAILURE_RATE_EXCEEDED"
    SLOW_CALL_RATE_EXCEEDED = "SLOW_CALL_RATE_EXCEEDED"


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    breaker: str
    type: EventType
    at: float  # epoch seconds
    duration: float | None = None  # of the call (SUCCESS, ERROR, IGNORED_ERROR)
    error: str | None = None  # ERROR, IGNORED_ERROR
    transition: str | None = None  # STATE_TRANSITION: "CLOSED_TO_OPEN"
    # The window's rates: with a transition (of the window left), or the one that crossed its
    # threshold (*_RATE_EXCEEDED); -1.0 below the minimum number of calls.
    failure_rate: float | None = None
    slow_call_rate: float | None = None

    def as_actuator(self) -> dict[str, Any]:
        """The event as Actuator's `circuitbreakerevents` lists it."""
        shown: dict[str, Any] = {
            "circuitBreakerName": self.breaker,
            "type": self.type.value,
            "creationTime": datetime.fromtimestamp(self.at, UTC).isoformat(),
        }
        if self.duration is not None:
            shown["durationInMs"] = round(self.duration * 1000)
        if self.error is not None:
            shown["errorMessage"] = self.error
        if self.transition is not None:
            shown["stateTransition"] = self.transition
        if self.failure_rate is not None:
            shown["failureRate"] = self.failure_rate
        if self.slow_call_rate is not None:
            shown["slowCallRate"] = self.slow_call_rate
        return shown

    def as_timeline_entry(self) -> dict[str, Any]:
        """A STATE_TRANSITION as the dashboard's timeline shows it."""
        from_state, _, to_state = (self.transition or "").partition("_TO_")
        return {
            "at": self.at,
            "from": from_state,
            "to": to_state,
            "failureRate": self.failure_rate,
            "slowCallRate": self.slow_call_rate,
        }


class BreakerEvents:
    """One breaker's event buffers."""

    def __init__(self, breaker: str, size: int = EVENT_BUFFER_SIZE) -> None:
        self.breaker = breaker
        self.recent: deque[BreakerEvent] = deque(maxlen=size)
        self.transitions: deque[BreakerEvent] = deque(maxlen=KEPT_TRANSITIONS)

    def publish(self, kind: EventType, **fields: Any) -> BreakerEvent:
        event = BreakerEvent(self.breaker, kind, time.time(), **fields)
        self.recent.append(event)
        if kind is EventType.STATE_TRANSITION:
            self.transitions.append(event)
        return event

    def call(self, kind: EventType, duration: float, error: BaseException | None = None) -> None:
        """A call's event; the error as Java's `getMessage()` would show it, its type first."""
        message = None if error is None else f"{type(error).__name__}: {error}"[:300]
        self.recent.append(BreakerEvent(self.breaker, kind, time.time(), duration, message))


class DecoratorEvent(NamedTuple):  # a tuple: built on every call, at a third of a dataclass's cost
    """An event of a Retry, TimeLimiter or Bulkhead: its type and the fields Actuator shows."""

    name_key: str  # Actuator's key for the decorator's name: "retryName", "bulkheadName", ...
    name: str
    type: str
    at: float  # epoch seconds
    details: tuple[tuple[str, Any], ...] = ()

    def as_actuator(self) -> dict[str, Any]:
        """As Actuator's `retryevents`, `timelimiterevents` and `bulkheadevents` list it."""
        return {
            self.name_key: self.name,
            "type": self.type,
            "creationTime": datetime.fromtimestamp(self.at, UTC).isoformat(),
            **{key: value for key, value in self.details if value is not None},
        }


class EventLog:
    """The latest events of one Retry, TimeLimiter or Bulkhead, oldest first."""

    def __init__(self, name_key: str, name: str, size: int = EVENT_BUFFER_SIZE) -> None:
        self.name_key = name_key
        self.name = name
        self.recent: deque[DecoratorEvent] = deque(maxlen=size)

    def publish(self, kind: str, **details: Any) -> None:
        self.recent.append(
            DecoratorEvent(self.name_key, self.name, kind, time.time(), tuple(details.items()))
        )

    def __iter__(self) -> Iterator[DecoratorEvent]:
        return iter(self.recent)

    def as_actuator(self) -> list[dict[str, Any]]:
        return [event.as_actuator() for event in self.recent]
