"""The worker's RabbitMQ: it consumes `resource.uploaded` and publishes `resource.processed`."""

from __future__ import annotations

from typing import Any

from resource_processor.config import Settings
from service_kit.broker import BrokerLink
from service_kit.messaging import RESOURCE_PROCESSED, RESOURCE_UPLOADED, RetryPolicy
from service_kit.web import HealthCheck


def make_broker(settings: Settings) -> BrokerLink:
    # Both queues are declared, so that a publish is never unroutable.
    return BrokerLink(
        settings.rabbitmq_url,
        settings.prefetch_count,
        [RESOURCE_UPLOADED, RESOURCE_PROCESSED],
        RetryPolicy(settings.retry_horizon_seconds),
    )


def broker_check(broker: BrokerLink) -> HealthCheck:
    """UP while connected; DOWN while connecting (and for how long): a worker without its
    broker does nothing."""

    async def check() -> dict[str, Any]:
        return {"status": "UP" if broker.is_up else "DOWN", **broker.status()}

    return check
