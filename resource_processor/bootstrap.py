"""The Resource Processor's composition root: every part, built in the order they depend on
each other (cosmicpython's `bootstrap`). `app.create_app` runs it in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import httpx2

from resource_processor.broker import broker_check, make_broker
from resource_processor.clients import PeerServices, RetryPolicy
from resource_processor.config import Settings
from resource_processor.handlers import ResourceProcessor
from service_kit.broker import parked_check
from service_kit.messaging import RESOURCE_PROCESSED, RESOURCE_UPLOADED
from service_kit.web import HealthCheck


@dataclass(frozen=True)
class Parts:
    health_checks: dict[str, HealthCheck]


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Parts]:
    broker = make_broker(settings)
    async with httpx2.AsyncClient(timeout=settings.http_timeout_seconds) as http:
        retry = RetryPolicy(
            attempts=settings.retry_attempts,
            min_wait_seconds=settings.retry_min_wait_seconds,
            max_wait_seconds=settings.retry_max_wait_seconds,
        )
        peers = PeerServices(http, settings.resource_service_url, settings.song_service_url, retry)
        processor = ResourceProcessor(
            peers,
            partial(broker.publish, RESOURCE_PROCESSED),
            settings.tags_block_bytes,
            settings.tags_max_bytes,
        )
        broker.consume(RESOURCE_UPLOADED, processor.process_uploaded)
        broker.start()  # for as long as it takes; /health says DOWN until then
        try:
            checks = {"broker": broker_check(broker), "deadLetters": parked_check(broker)}
            yield Parts(health_checks=checks)
        finally:
            await broker.close(settings.shutdown_grace_seconds)
