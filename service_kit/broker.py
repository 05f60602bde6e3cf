"""A service's one link to RabbitMQ: connect, declare, consume, publish with confirms, drain.

Both services that speak AMQP use it; each one's `broker.py` says which queues it declares and
consumes, and how the link counts in its health. `connect_robust` restores the connection, the
channel and the consumers after a broker outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from service_kit.messaging import (
    Handler,
    ResourceEvent,
    connect_broker,
    declare_queue,
    is_connected,
    message_handler,
    publish,
)

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0
CANCEL_TIMEOUT_SECONDS = 5.0

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[Any]]


class BrokerUnavailable(Exception):
    pass


class MessagesInFlight:
    """Lets shutdown wait for handlers already running instead of cutting them off mid-work."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, on_message: OnMessage) -> OnMessage:
        async def tracked(message: AbstractIncomingMessage) -> None:
            self.count += 1
            self._idle.clear()
            try:
                await on_message(message)
            finally:
                self.count -= 1
                if self.count == 0:
                    self._idle.set()

        return tracked

    async def wait_idle(self, grace_seconds: float) -> None:
        # What is still running after the grace period is redelivered: delivery is at least once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
        if self.count:
            log.warning("shutdown_with_messages_in_flight", count=self.count)


class BrokerLink:
    def __init__(self, url: str, prefetch_count: int, declares: list[str]) -> None:
        self._url = url
        self._prefetch_count = prefetch_count
        self._declares = declares  # every queue this service publishes to or consumes
        self._handlers: dict[str, OnMessage] = {}
        self._consuming: list[tuple[AbstractQueue, str]] = []
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.in_flight = MessagesInFlight()

    def consume(self, queue: str, handle: Handler) -> None:
        """Deliver `queue`'s messages to `handle` once connected (ack, requeue or dead-letter
        as `message_handler` decides)."""
        self._handlers[queue] = self.in_flight.track(message_handler(queue, handle))

    async def connect(self, give_up_after_seconds: float = float("inf")) -> None:
        """Connect (retrying while RabbitMQ is unreachable), declare, start consuming."""
        self._connection = await connect_broker(self._url, give_up_after_seconds)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await self._channel.set_qos(prefetch_count=self._prefetch_count)
        queues = {name: await declare_queue(self._channel, name) for name in self._declares}
        for name, on_message in self._handlers.items():
            self._consuming.append((queues[name], await queues[name].consume(on_message)))
        log.info("broker_connected", consuming=list(self._handlers))

    def connect_in_background(self) -> None:
        """For a service that must serve while the broker is away: retries for ever."""
        self._connecting = asyncio.create_task(self.connect())

    @property
    def is_up(self) -> bool:
        return (
            is_connected(self._connection)
            and self._channel is not None
            and not self._channel.is_closed
        )

    async def publish(self, queue: str, event: ResourceEvent) -> None:
        if not self.is_up or self._channel is None:
            raise BrokerUnavailable("not connected to RabbitMQ")
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await publish(self._channel, queue, event)

    async def close(self, grace_seconds: float) -> None:
        """Stop new deliveries, let the running ones finish (acked or requeued), disconnect."""
        log.info("broker_link_closing", messages_in_flight=self.in_flight.count)
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
        for queue, tag in self._consuming:
            try:
                await queue.cancel(tag, timeout=CANCEL_TIMEOUT_SECONDS)
            except Exception as exc:  # a broker already gone stops deliveries anyway
                log.warning("consumer_cancel_failed", error=repr(exc)[:300])
        await self.in_flight.wait_idle(grace_seconds)
        if self._connection is not None:
            await self._connection.close()
