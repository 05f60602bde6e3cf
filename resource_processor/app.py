from __future__ import annotations

from contextlib import asynccontextmanager
from functools import partial

import httpx
import structlog
from fastapi import FastAPI

from resource_processor.broker import MessagesInFlight, broker_check
from resource_processor.config import Settings
from resource_processor.peers import PeerServices, RetryPolicy
from resource_processor.processing import ResourceProcessor
from service_kit.messaging import (
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    connect_broker,
    declare_queue,
    message_handler,
    publish,
)
from service_kit.web import create_service_app

log = structlog.get_logger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        connection = await connect_broker(
            settings.rabbitmq_url, settings.broker_connect_timeout_seconds
        )
        app.state.health_checks = {"broker": broker_check(connection)}
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.set_qos(prefetch_count=settings.prefetch_count)
            uploaded = await declare_queue(channel, RESOURCE_UPLOADED)
            await declare_queue(channel, RESOURCE_PROCESSED)  # so a publish is never unroutable
            async with httpx.AsyncClient(timeout=settings.http_timeout_seconds) as http:
                processor = ResourceProcessor(
                    _peer_services(http, settings),
                    partial(publish, channel, RESOURCE_PROCESSED),
                    settings.download_dir,
                )
                in_flight = MessagesInFlight()
                consumer_tag = await uploaded.consume(
                    in_flight.track(message_handler(RESOURCE_UPLOADED, processor.process_uploaded))
                )
                log.info("service_started", port=settings.port, queue=RESOURCE_UPLOADED)
                yield
                # Stop new deliveries first, then let the running ones finish (acked or requeued).
                try:
                    await uploaded.cancel(consumer_tag, timeout=5)
                except Exception as exc:  # a broker already gone stops deliveries anyway
                    log.warning("consumer_cancel_failed", error=repr(exc)[:300])
                await in_flight.wait_idle(settings.shutdown_grace_seconds)
        finally:
            await connection.close()

    return create_service_app("Resource Processor", lifespan, [])


def _peer_services(http: httpx.AsyncClient, settings: Settings) -> PeerServices:
    retry = RetryPolicy(
        attempts=settings.retry_attempts,
        min_wait_seconds=settings.retry_min_wait_seconds,
        max_wait_seconds=settings.retry_max_wait_seconds,
    )
    return PeerServices(http, settings.resource_service_url, settings.song_service_url, retry)
