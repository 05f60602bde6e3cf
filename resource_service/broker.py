"""The Resource Service's RabbitMQ connection: it must not stop uploads when the broker is down.

Uploads only write to the outbox, so the service starts and serves while the broker is away; the
connection is made in the background and `connect_robust` restores it (and the consumer) after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from service_kit.messaging import (
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    ResourceEvent,
    connect_broker,
    declare_queue,
    is_connected,
    publish,
)

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0


class BrokerUnavailable(Exception):
    pass


class Broker:
    def __init__(
        self,
        url: str,
        prefetch_count: int,
        on_processed: Callable[[AbstractIncomingMessage], Awaitable[None]],
    ):
        self._url = url
        self._prefetch_count = prefetch_count
        self._on_processed = on_processed
        self._connection: AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._connecting: asyncio.Task | None = None

    def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        self._connection = await connect_broker(self._url)  # retries for as long as it takes
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch_count)
        await declare_queue(self._channel, RESOURCE_UPLOADED)
        processed = await declare_queue(self._channel, RESOURCE_PROCESSED)
        await processed.consume(self._on_processed)
        log.info("broker_connected")

    @property
    def is_up(self) -> bool:
        return (
            is_connected(self._connection)
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish(self, queue: str, event: ResourceEvent) -> None:
        if not self.is_up:
            raise BrokerUnavailable("not connected to RabbitMQ")
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await publish(self._channel, queue, event)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
        if self._connection is not None:
            await self._connection.close()
