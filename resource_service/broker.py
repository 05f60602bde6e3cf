"""The Resource Service's RabbitMQ: it must not stop uploads when the broker is down.

Uploads only write to the outbox, so the service starts and serves while the broker is away;
the link connects in the background and is restored after an outage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from resource_service.config import Settings
from service_kit.broker import BrokerLink
from service_kit.messaging import (
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    RetryPolicy,
)
from service_kit.web import HealthCheck


def make_broker(settings: Settings) -> BrokerLink:
    return BrokerLink(
        settings.rabbitmq_url,
        settings.prefetch_count,
        [RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED],
        RetryPolicy(settings.retry_horizon_seconds),
    )


def broker_health(
    broker: BrokerLink,
    pending_events: Callable[[], Awaitable[int]],
    parked_events: Callable[[], Awaitable[int]],
) -> HealthCheck:
    """DEGRADED, never DOWN, while the broker is away (the outbox keeps the uploads' events) or
    while an event the relay could not publish within the retry horizon is parked."""

    async def check() -> dict[str, Any]:
        pending, parked = await pending_events(), await parked_events()
        status = "UP" if broker.is_up and not parked else "DEGRADED"
        return {
            "status": status,
            "pendingEvents": pending,
            "parkedEvents": parked,
            **broker.status(),
        }

    return check
