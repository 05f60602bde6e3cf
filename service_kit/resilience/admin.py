"""What a service exposes about its breakers: a health check and an admin router."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from service_kit.errors import NotFound
from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.state import State
from service_kit.web import HealthCheck


def breaker_health(breaker: CircuitBreaker) -> HealthCheck:
    """UP when closed (or disabled); DEGRADED otherwise: the caller's fallback is serving, so
    an open breaker must never fail readiness."""

    async def check() -> dict[str, Any]:
        snapshot = breaker.snapshot()
        healthy = breaker.state in (State.CLOSED, State.DISABLED)
        return {"status": "UP" if healthy else "DEGRADED", **snapshot}

    return check


def breaker_admin_router(breakers: dict[str, CircuitBreaker]) -> APIRouter:
    router = APIRouter(prefix="/admin/breakers", tags=["admin"])

    def find(name: str) -> CircuitBreaker:
        if name not in breakers:
            raise NotFound(f"Circuit breaker '{name}' not found")
        return breakers[name]

    @router.get("")
    def list_breakers() -> list[dict[str, Any]]:
        """Each breaker's state and counts, and the settings it runs with."""
        return [
            {**breaker.snapshot(), "settings": breaker.settings.model_dump()}
            for breaker in breakers.values()
        ]

    @router.post("/{name}/{action}")
    def change_state(
        name: str, action: Literal["force-open", "close", "disable"]
    ) -> dict[str, Any]:
        breaker = find(name)
        {"force-open": breaker.force_open, "close": breaker.close, "disable": breaker.disable}[
            action
        ]()
        return breaker.snapshot()

    return router
