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
    declare_queue,
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
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                self._connection = await aio_pika.connect_robust(self._url, timeout=5)
                break
            except (OSError, aio_pika.exceptions.AMQPError, TimeoutError) as exc:
                log.warning("broker_connect_failed", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch_count)
        await declare_queue(self._channel, RESOURCE_UPLOADED)
        processed = await declare_queue(self._channel, RESOURCE_PROCESSED)
        await processed.consume(self._on_processed)
        self.connected.set()
        log.info("broker_connected")

    @property
    def is_up(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
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
