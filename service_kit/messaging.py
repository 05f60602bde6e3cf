"""The message contract and the RabbitMQ topology both sides of the pipeline declare.

Queues are quorum queues: durable, and their `x-delivery-limit` bounds how often a message that
keeps failing (or keeps crashing its worker) is redelivered before it is dead-lettered to the
queue's own `.dlq`. Handlers retry transient faults with backoff themselves (tenacity) and raise
`DeadLetter` for what no retry can fix.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from service_kit.retries import log_retry

log = structlog.get_logger(__name__)

RESOURCE_UPLOADED = "resource.uploaded"
RESOURCE_PROCESSED = "resource.processed"
DEAD_LETTER_EXCHANGE = "resources.dlx"
DELIVERY_LIMIT = 5


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


class PoisonMessage(ValueError):
    """A body that is not the contract's `{"resourceId": n}`."""


class DeadLetter(Exception):
    """The message can never succeed (for example a 4xx from a peer): park it in the DLQ."""


@dataclass(frozen=True)
class ResourceEvent:
    resource_id: int

    def to_body(self) -> bytes:
        return json.dumps({"resourceId": self.resource_id}).encode()

    @classmethod
    def from_body(cls, body: bytes) -> ResourceEvent:
        try:
            resource_id = json.loads(body)["resourceId"]
        except (ValueError, TypeError, KeyError) as exc:
            raise PoisonMessage(f"not a resource event: {body[:100]!r}") from exc
        if isinstance(resource_id, bool) or not isinstance(resource_id, int) or resource_id < 1:
            raise PoisonMessage(f"not a resource id: {resource_id!r}")
        return cls(resource_id)


async def connect_broker(
    url: str, give_up_after_seconds: float = float("inf")
) -> AbstractRobustConnection:
    """Connect, retrying while RabbitMQ is unreachable (it may still be starting); once connected,
    `connect_robust` reconnects and restores the consumer by itself."""
    retrying = AsyncRetrying(
        stop=stop_after_delay(give_up_after_seconds),
        wait=wait_exponential_jitter(multiplier=0.5, max=5.0, jitter=0.5),
        retry=retry_if_exception(_is_unreachable),
        before_sleep=log_retry("broker_connect_retrying"),
        reraise=True,
    )
    return await retrying(aio_pika.connect_robust, url, timeout=5)


def _is_unreachable(error: BaseException) -> bool:
    # Wrong credentials will not fix themselves: fail the start at once.
    if isinstance(error, ProbableAuthenticationError):
        return False
    return isinstance(error, AMQPConnectionError | OSError | TimeoutError)


def is_connected(connection: AbstractRobustConnection | None) -> bool:
    """False while a robust connection is reconnecting, not only once it is closed."""
    if connection is None or connection.is_closed:
        return False
    connected = getattr(connection, "connected", None)  # an Event on aio-pika's connections
    return connected is None or connected.is_set()


async def declare_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    """Declare `name` and its dead-letter queue; idempotent, so every process declares both."""
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dlq = await channel.declare_queue(
        dead_letter_queue(name), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dlq.bind(dlx, routing_key=dead_letter_queue(name))
    return await channel.declare_queue(
        name,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dead_letter_queue(name),
        },
    )


async def publish(channel: AbstractChannel, queue: str, event: ResourceEvent) -> None:
    """Publish persistently; returns once the broker confirmed (the channel has confirms on)."""
    await channel.default_exchange.publish(
        aio_pika.Message(
            event.to_body(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            content_type="application/json",
        ),
        routing_key=queue,
        mandatory=True,  # an unroutable message is an error, not a silent drop
    )


Handler = Callable[[ResourceEvent], Awaitable[None]]


def message_handler(
    queue: str, handle: Handler
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Ack after `handle` returns; dead-letter poison and `DeadLetter`; requeue anything else
    (the queue's delivery limit bounds that, then it is dead-lettered)."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            event = ResourceEvent.from_body(message.body)
        except PoisonMessage as exc:
            log.error("message_dead_lettered", queue=queue, reason=str(exc))
            await message.reject(requeue=False)
            return
        # Every log line the handler writes carries the resource id.
        with structlog.contextvars.bound_contextvars(queue=queue, resource_id=event.resource_id):
            try:
                await handle(event)
            except DeadLetter as exc:
                log.error("message_dead_lettered", reason=str(exc))
                await message.reject(requeue=False)
            except Exception as exc:
                log.warning(
                    "message_requeued",
                    error=repr(exc)[:300],
                    delivery_count=(message.headers or {}).get("x-delivery-count", 0),
                )
                await message.reject(requeue=True)
            else:
                await message.ack()

    return on_message
