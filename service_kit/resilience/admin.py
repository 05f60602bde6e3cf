"""What a service exposes about its breakers and other decorators: a health check and admin
routers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Request

from service_kit.deps import part, require_admin_token
from service_kit.errors import NotFound
from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.events import EventLog
from service_kit.resilience.state import State
from service_kit.web import HealthCheck


@runtime_checkable
class HasBreakers(Protocol):
    breakers: dict[str, CircuitBreaker]


@runtime_checkable
class HasEventLogs(Protocol):
    event_logs: dict[str, dict[str, EventLog]]  # "retries" -> {"storage": its events}, ...


def breaker_health(breaker: CircuitBreaker) -> HealthCheck:
    """UP when closed (or disabled); DEGRADED otherwise: the caller's fallback is serving, so
    an open breaker must never fail readiness."""

    async def check() -> dict[str, Any]:
        snapshot = breaker.snapshot()
        healthy = breaker.state in (State.CLOSED, State.DISABLED)
        return {"status": "UP" if healthy else "DEGRADED", **snapshot}

    return check


def breaker_admin_router() -> APIRouter:
    """`/admin/breakers` over the breakers of the composition root's parts (`HasBreakers`)."""
    router = APIRouter(
        prefix="/admin/breakers", tags=["admin"], dependencies=[Depends(require_admin_token)]
    )

    def breakers(request: Request) -> dict[str, CircuitBreaker]:
        return part(request, HasBreakers).breakers

    @router.get("")
    async def list_breakers(request: Request) -> list[dict[str, Any]]:
        """Each breaker's state and counts, and the settings it runs with."""
        return [
            {**breaker.snapshot(), "settings": breaker.settings.model_dump()}
            for breaker in breakers(request).values()
        ]

    @router.get("/{name}/events")
    async def breaker_events(name: str, request: Request) -> dict[str, Any]:
        """The breaker's latest events, oldest first, as Actuator's `circuitbreakerevents`."""
        breaker = _named(breakers(request), name)
        return {"circuitBreakerEvents": [e.as_actuator() for e in breaker.events.recent]}

    # async: the state changes on the event loop, where the calls through the breaker run.
    # One route per action, not `/{name}/{action}`: a method a path does not have is a 405,
    # whatever the path (a POST to `/{name}/events` included).
    def action_route(action: str, change: Callable[[CircuitBreaker], None]) -> None:
        async def change_state(name: str, request: Request) -> dict[str, Any]:
            breaker = _named(breakers(request), name)
            change(breaker)
            return breaker.snapshot()

        change_state.__name__ = f"{action.replace('-', '_')}_breaker"
        router.post(f"/{{name}}/{action}", name=change_state.__name__)(change_state)

    action_route("force-open", CircuitBreaker.force_open)
    action_route("close", CircuitBreaker.close)
    action_route("disable", CircuitBreaker.disable)

    return router


# Path segment -> (what its decorators are called, the list's key in Actuator's answer).
DECORATOR_EVENTS = {
    "retries": ("Retry", "retryEvents"),
    "timelimiters": ("TimeLimiter", "timeLimiterEvents"),
    "bulkheads": ("Bulkhead", "bulkheadEvents"),
}


def decorator_events_router() -> APIRouter:
    """`GET /admin/{retries,timelimiters,bulkheads}/{name}/events` over the event logs a
    composition root's parts hold (`HasEventLogs`), as Actuator's `retryevents`,
    `timelimiterevents` and `bulkheadevents`."""
    router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin_token)])

    def events_route(family: str, title: str, key: str) -> None:
        async def decorator_events(name: str, request: Request) -> dict[str, Any]:
            logs = part(request, HasEventLogs).event_logs
            log = logs.get(family, {}).get(name)
            if log is None:
                raise NotFound(f"{title} '{name}' not found")
            return {key: log.as_actuator()}

        decorator_events.__name__ = f"{family}_events"
        router.get(f"/{family}/{{name}}/events", name=decorator_events.__name__)(decorator_events)

    for family, (title, key) in DECORATOR_EVENTS.items():
        events_route(family, title, key)
    return router


def _named(found: dict[str, CircuitBreaker], name: str) -> CircuitBreaker:
    if name not in found:
        raise NotFound(f"Circuit breaker '{name}' not found")
    return found[name]
