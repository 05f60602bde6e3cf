"""A service's one link to RabbitMQ: connect, declare, consume, publish with confirms, drain.

Both services that speak AMQP use it; each one's `broker.py` says which queues it declares and
consumes, and how the link counts in its health. The link never dies silently: connecting,
opening the channel, declaring and consuming are retried together, with backoff, for as long as
the process lives (a wrong password too, logged loudly); after that `connect_robust` restores
the connection, the channel and the consumers. It also watches the dead-letter queues of what
it consumes, for `/health` and `/metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import ProbableAuthenticationError
from prometheus_client import Gauge
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from service_kit.messaging import (
    PARKED_AT,
    Handler,
    ResourceEvent,
    RetryPolicy,
    dead_letter_queue,
    declare_queue,
    header_number,
    message_handler,
    persistent,
)
from service_kit.web import HealthCheck

log = structlog.get_logger(__name__)

PUBLISH_TIMEOUT_SECONDS = 5.0
CANCEL_TIMEOUT_SECONDS = 5.0
PARKED_CHECK_SECONDS = 10.0

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[Any]]

PARKED = Gauge("dead_letter_messages", "Messages parked in a dead-letter queue", ["queue"])
# Of every queue the service declares, as the watcher last saw them: an alert fires when no
# processor consumes resource.uploaded (docker/prometheus/alerts.yml).
QUEUE_CONSUMERS = Gauge("queue_consumers", "Consumers on a queue", ["queue"])
QUEUE_MESSAGES = Gauge("queue_messages", "Messages ready in a queue", ["queue"])
PARKED_AGE = Gauge(
    "dead_letter_oldest_age_seconds",
    "Age of the message at the head of a dead-letter queue (0 when empty)",
    ["queue"],
)


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


@dataclass(frozen=True)
class Parked:
    depth: int
    oldest_age_seconds: float


class BrokerLink:
    def __init__(
        self, url: str, prefetch_count: int, declares: list[str], policy: RetryPolicy
    ) -> None:
        self._url = url
        self._prefetch_count = prefetch_count
        self._declares = declares  # every queue this service publishes to or consumes
        self._policy = policy
        self._handlers: dict[str, OnMessage] = {}
        self._consuming: list[tuple[AbstractQueue, str]] = []
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = False  # declared and consuming, once
        self._down_since: float | None = time.monotonic()
        self.parked: dict[str, Parked] = {}
        self.in_flight = MessagesInFlight()

    def consume(self, queue: str, handle: Handler) -> None:
        """Deliver `queue`'s messages to `handle` once connected."""
        on_message = message_handler(queue, handle, self._policy, self.send)
        self._handlers[queue] = self.in_flight.track(on_message)

    def start(self) -> None:
        """Connect in the background (for as long as it takes) and watch the parked messages."""
        self._tasks = [
            asyncio.create_task(self._connect_until_connected()),
            asyncio.create_task(self._watch_parked()),
        ]

    async def _connect_until_connected(self) -> None:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(multiplier=0.5, max=15.0, jitter=0.5),
            retry=retry_if_exception_type(Exception),
            before_sleep=_log_connect_failure,
        )
        await retrying(self._connect)
        self._down_since = None

    async def _connect(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self._disconnect()  # nothing half open: a robust channel would reopen itself
            raise
        self._ready = True
        log.info("broker_connected", consuming=list(self._handlers))

    async def _open(self) -> None:
        self._connection = await aio_pika.connect_robust(self._url, timeout=5)
        self._connection.close_callbacks.add(self._on_down)
        self._connection.reconnect_callbacks.add(self._on_up)
        self._channel = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await self._channel.set_qos(prefetch_count=self._prefetch_count)
        queues = {name: await declare_queue(self._channel, name) for name in self._declares}
        self._consuming = []
        for name, on_message in self._handlers.items():
            self._consuming.append((queues[name], await queues[name].consume(on_message)))

    def _on_down(self, *_: object) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()

    def _on_up(self, *_: object) -> None:
        self._down_since = None

    @property
    def is_up(self) -> bool:
        connection, channel = self._connection, self._channel
        if not self._ready or connection is None or channel is None:
            return False
        if connection.is_closed or channel.is_closed:
            return False
        connected = getattr(connection, "connected", None)  # an Event while reconnecting
        return connected is None or connected.is_set()

    def status(self) -> dict[str, Any]:
        """The link's state for `/health`: connected, or connecting and since when."""
        if self.is_up:
            return {"link": "connected"}
        since = self._down_since if self._down_since is not None else time.monotonic()
        return {"link": "connecting", "downSeconds": round(time.monotonic() - since, 1)}

    async def send(self, queue: str, message: aio_pika.Message) -> None:
        if not self.is_up or self._channel is None:
            raise BrokerUnavailable("not connected to RabbitMQ")
        async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
            await self._channel.default_exchange.publish(message, routing_key=queue, mandatory=True)

    async def publish(self, queue: str, event: ResourceEvent) -> None:
        await self.send(queue, persistent(event.to_body()))

    async def _watch_parked(self) -> None:
        while True:
            if self.is_up:
                with contextlib.suppress(Exception):  # a broker going away: next round
                    for queue in self._handlers:
                        self.parked[queue] = await self.read_parked(dead_letter_queue(queue))
                        PARKED.labels(dead_letter_queue(queue)).set(self.parked[queue].depth)
                        PARKED_AGE.labels(dead_letter_queue(queue)).set(
                            self.parked[queue].oldest_age_seconds
                        )
                    for queue, stats in (await self.queue_stats(self._declares)).items():
                        QUEUE_CONSUMERS.labels(queue).set(stats["consumers"])
                        QUEUE_MESSAGES.labels(queue).set(stats["depth"])
            await asyncio.sleep(PARKED_CHECK_SECONDS)

    async def queue_stats(self, queues: list[str]) -> dict[str, dict[str, int]]:
        """Each queue's depth and consumer count (passive declares); {} while the link is down."""
        if not self.is_up or self._connection is None:
            return {}
        stats = {}
        async with self._connection.channel() as channel:
            for name in queues:
                declared = (await channel.declare_queue(name, passive=True)).declaration_result
                stats[name] = {
                    "depth": declared.message_count or 0,
                    "consumers": declared.consumer_count or 0,
                }
        return stats

    async def read_parked(self, dlq: str) -> Parked:
        """Depth, and the age of the head message: read, then handed back with `basic.nack`,
        which RabbitMQ counts as no delivery (its "Negative Acknowledgements" guide, 4.3; a
        `basic.reject` counts one). The DLQ is a classic queue, which counts none at all, so a
        parked message is never used up by being watched (`messaging`'s docstring)."""
        assert self._connection is not None
        async with self._connection.channel() as channel:
            queue = await channel.declare_queue(dlq, passive=True)
            depth = queue.declaration_result.message_count or 0
            if depth == 0:
                return Parked(0, 0.0)
            head = await queue.get(no_ack=False, fail=False)
            if head is None:
                return Parked(depth, 0.0)
            parked_at = header_number(head.headers or {}, PARKED_AT, time.time())
            await head.nack(requeue=True)
            return Parked(depth, max(0.0, time.time() - parked_at))

    async def close(self, grace_seconds: float) -> None:
        """Stop new deliveries, let the running ones finish (acked or requeued), disconnect."""
        log.info("broker_link_closing", messages_in_flight=self.in_flight.count)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for queue, tag in self._consuming:
            try:
                await queue.cancel(tag, timeout=CANCEL_TIMEOUT_SECONDS)
            except Exception as exc:  # a broker already gone stops deliveries anyway
                log.warning("consumer_cancel_failed", error=repr(exc)[:300])
        await self.in_flight.wait_idle(grace_seconds)
        await self._disconnect()

    async def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = self._channel = None
        self._ready = False


def parked_check(broker: BrokerLink) -> HealthCheck:
    """DEGRADED while any message is parked in the DLQ of a queue this service consumes."""

    async def check() -> dict[str, Any]:
        queues = {
            dead_letter_queue(queue): {
                "depth": p.depth,
                "oldestAgeSeconds": round(p.oldest_age_seconds),
            }
            for queue, p in broker.parked.items()
        }
        parked = any(q["depth"] for q in queues.values())
        return {"status": "DEGRADED" if parked else "UP", "queues": queues}

    return check


def _log_connect_failure(state: Any) -> None:
    error = state.outcome.exception() if state.outcome else None
    fields = {"attempt": state.attempt_number, "error": repr(error)[:300]}
    if isinstance(error, ProbableAuthenticationError):
        # Credentials do not fix themselves: say it loudly, and keep trying (they may be rotated).
        log.error("broker_authentication_failed", **fields, hint="check the RABBITMQ_URL user")
    else:
        log.warning("broker_connect_retrying", **fields)
