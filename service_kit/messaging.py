"""The message contract and the RabbitMQ topology both sides of the pipeline declare.

For each work queue `Q`:
- `Q`: a quorum queue. Its `x-delivery-limit` bounds how often a message that keeps crashing
  its worker (the process dies, no handler returns) is redelivered; then the broker
  dead-letters it, at least once (`x-dead-letter-strategy`), to `Q.dlq`.
- `Q.retry.<n>s`: delayed-retry queues, one per backoff level. A handler that fails on
  something transient (a peer down, a 5xx, a timeout, the database or S3 away) does not requeue
  at once: the message is republished to the level for its attempt, with jitter in its TTL, and
  when that expires RabbitMQ dead-letters it to `resources.retry-return`, where `Q` is bound by
  its name. The delay lives in the broker, so it survives a restart of every process. They are
  classic queues, which dead-letter at most once: the expired message is routed once and not
  kept. So that a missing `Q` cannot drop it, `resources.retry-return` has an alternate
  exchange (rabbitmq.com/docs/ae): a message no queue is bound for goes to the classic queue
  `resources.retry-orphans`, and `declare_queue`, which every process runs when it connects,
  sends the orphans back through `resources.retry-return` with confirms; one whose queue is
  still missing goes round to the orphans again. Quorum retry queues with at-least-once
  dead-lettering would keep it in the broker, but hung RabbitMQ 3.10's vhost management after
  a broker restart, three times (docs/faults.md).
- `Q.dlq`: what no retry can fix (malformed, an invariant broken) or what still fails after the
  retry horizon is parked here, with the reason, the attempt count and the first failure time
  in its headers. `make replay-dlq` moves parked messages back once their cause is fixed. It is
  a classic queue, declared as one explicitly (a vhost's default type may be quorum): classic
  queues count no deliveries and have no delivery limit, so no broker default can drop a
  parked message, however often it is looked at (a quorum queue drops a message returned 20
  times from RabbitMQ 4.0 on, and counts a return before 4.3).

`QUEUE_ARGUMENTS` is that topology as data: the services declare it, and `make migrate-queues`
moves the messages of queues declared with older arguments into it.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from opentelemetry import trace

from service_kit import tracing
from service_kit.ids import is_id

log = structlog.get_logger(__name__)

RESOURCE_UPLOADED = "resource.uploaded"
RESOURCE_PROCESSED = "resource.processed"
RESOURCE_DELETED = "resource.deleted"
DEAD_LETTER_EXCHANGE = "resources.dlx"
RETRY_RETURN_EXCHANGE = "resources.retry-return"  # expired retries, back to their work queue
RETRY_ORPHANS = "resources.retry-orphans"  # its alternate exchange and queue: no queue bound
DELIVERY_LIMIT = 5
# The backoff levels of the delayed retries. The last one repeats until the horizon: a peer back
# after an outage of any length is retried within 30 s.
RETRY_DELAYS_SECONDS = (1, 2, 5, 10, 20, 30)
RETRY_JITTER = 0.2  # a message waits between 80 % and 100 % of its level's delay

# Headers a retried or parked message carries.
ATTEMPTS = "x-retry-attempts"
# Epoch seconds, whole: pamqp sends a Python float in a header table as a 32-bit float, which
# holds today's epoch only to within about a minute.
FIRST_FAILURE = "x-first-failure"
PARK_REASON = "x-park-reason"
PARKED_AT = "x-parked-at"  # epoch seconds, whole


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def retry_queue(queue: str, delay_seconds: int) -> str:
    return f"{queue}.retry.{delay_seconds}s"


class PoisonMessage(ValueError):
    """A body that is not the contract's `{"resourceId": n}`."""


class DeadLetter(Exception):
    """The message can never succeed (for example a 4xx from a peer): park it in the DLQ."""


@dataclass(frozen=True)
class ResourceEvent:
    resource_id: int
    # `resource.deleted` names the objects to remove: [{"bucket": ..., "key": ...}, ...]
    objects: tuple[tuple[str, str], ...] = ()

    def to_body(self) -> bytes:
        body: dict[str, Any] = {"resourceId": self.resource_id}
        if self.objects:
            body["objects"] = [{"bucket": b, "key": k} for b, k in self.objects]
        return json.dumps(body).encode()

    @classmethod
    def from_body(cls, body: bytes) -> ResourceEvent:
        try:
            data = json.loads(body)
            resource_id = data["resourceId"]
            objects = tuple((o["bucket"], o["key"]) for o in data.get("objects", []))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PoisonMessage(f"not a resource event: {body[:100]!r}") from exc
        if not is_id(resource_id):
            raise PoisonMessage(f"not a resource id: {resource_id!r}")
        if not all(isinstance(part, str) and part for pair in objects for part in pair):
            raise PoisonMessage(f"not object locations: {objects!r}"[:200])
        return cls(resource_id, objects)


# Dead-letter at least once: the broker keeps the message until its target confirmed it.
# RabbitMQ requires quorum queues and reject-publish overflow for that.
AT_LEAST_ONCE = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}


# Declared as classic even where a vhost's default type is quorum (see the module's docstring).
CLASSIC: dict[str, Any] = {"x-queue-type": "classic"}


def queue_arguments(name: str) -> dict[str, dict[str, Any]]:
    """Every queue of work queue `name`'s topology, with the arguments it is declared with."""
    retries = {
        retry_queue(name, delay): {
            "x-message-ttl": delay * 1000,
            "x-dead-letter-exchange": RETRY_RETURN_EXCHANGE,  # back to `name`
            "x-dead-letter-routing-key": name,
        }
        for delay in RETRY_DELAYS_SECONDS
    }
    return {
        dead_letter_queue(name): CLASSIC,
        **retries,
        name: {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": dead_letter_queue(name),
            **AT_LEAST_ONCE,
        },
    }


async def declare_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    """Declare `name`, its delayed-retry levels and its dead-letter queue, then send back the
    retries that found no queue; idempotent, so every process declares all of them."""
    exchanges = await declare_exchanges(channel)
    declared = {
        queue: await channel.declare_queue(queue, durable=True, arguments=arguments)
        for queue, arguments in queue_arguments(name).items()
    }
    await declared[dead_letter_queue(name)].bind(
        exchanges[DEAD_LETTER_EXCHANGE], routing_key=dead_letter_queue(name)
    )
    await declared[name].bind(exchanges[RETRY_RETURN_EXCHANGE], routing_key=name)
    await return_orphans(channel, exchanges[RETRY_RETURN_EXCHANGE])
    return declared[name]


async def declare_exchanges(channel: AbstractChannel) -> dict[str, AbstractExchange]:
    """The exchanges every work queue's topology uses, and the orphans' queue."""
    orphans = await channel.declare_exchange(
        RETRY_ORPHANS, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(RETRY_ORPHANS, durable=True, arguments=CLASSIC)
    await queue.bind(orphans)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    retry_return = await channel.declare_exchange(
        RETRY_RETURN_EXCHANGE,
        aio_pika.ExchangeType.DIRECT,
        durable=True,
        arguments={"alternate-exchange": RETRY_ORPHANS},
    )
    return {DEAD_LETTER_EXCHANGE: dlx, RETRY_RETURN_EXCHANGE: retry_return}


async def return_orphans(channel: AbstractChannel, retry_return: AbstractExchange) -> int:
    """Send every retry that found no work queue back through `retry_return`: to its queue if
    it is there now, else round to the orphans again. Each copy is confirmed before the orphan
    is acked (at least once). Returns how many went round."""
    orphans = await channel.declare_queue(RETRY_ORPHANS, durable=True, arguments=CLASSIC)
    waiting = orphans.declaration_result.message_count or 0
    for _ in range(waiting):
        orphan = await orphans.get(no_ack=False, fail=False)
        if orphan is None:
            break
        copy = persistent(orphan.body, dict(orphan.headers or {}))
        await retry_return.publish(copy, routing_key=orphan.routing_key or "")
        await orphan.ack()
    if waiting:
        log.info("retry_orphans_returned", messages=waiting)
    return waiting


def persistent(
    body: bytes, headers: dict[str, Any] | None = None, **extra: Any
) -> aio_pika.Message:
    """A persistent message that carries the current trace (`traceparent` in its headers)."""
    headers = dict(headers or {})
    tracing.inject(headers)
    return aio_pika.Message(
        body,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        content_type="application/json",
        headers=headers,
        **extra,
    )


async def publish(channel: AbstractChannel, queue: str, event: ResourceEvent) -> None:
    """Publish persistently; returns once the broker confirmed. The channel is opened with
    `on_return_raises`, so an unroutable message raises instead of counting as sent."""
    await channel.default_exchange.publish(
        persistent(event.to_body()), routing_key=queue, mandatory=True
    )


Handler = Callable[[ResourceEvent], Awaitable[None]]
# Publishes a message to a queue (the default exchange), returning once confirmed.
Publisher = Callable[[str, aio_pika.Message], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How long a transient failure is retried before its message is parked (the horizon)."""

    horizon_seconds: float = 3600.0
    clock: Callable[[], float] = time.time

    def next_delay(self, attempt: int) -> tuple[int, float]:
        """The backoff level for this attempt (1, 2, ...) and the message's TTL in seconds."""
        level = RETRY_DELAYS_SECONDS[min(attempt, len(RETRY_DELAYS_SECONDS)) - 1]
        return level, level * (1 - RETRY_JITTER * random.random())


def header_number(headers: Mapping[str, Any], name: str, default: float) -> float:
    value = headers.get(name)
    return float(value) if isinstance(value, int | float | str) else default


def message_handler(
    queue: str, handle: Handler, policy: RetryPolicy, send: Publisher
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Ack after `handle` returns; park poison and `DeadLetter`; schedule a delayed retry for
    anything else, parking it once the horizon has passed. The copy is confirmed before the
    original is acked: at least once, never lost."""

    async def on_message(message: AbstractIncomingMessage) -> None:
        with tracing.consuming(queue, message.headers):
            await handle_one(message)

    async def handle_one(message: AbstractIncomingMessage) -> None:
        try:
            event = ResourceEvent.from_body(message.body)
        except PoisonMessage as exc:
            await _park(queue, message, str(exc), policy, send)
            return
        # Every log line the handler writes carries the resource id.
        with structlog.contextvars.bound_contextvars(queue=queue, resource_id=event.resource_id):
            trace.get_current_span().set_attribute("resource.id", event.resource_id)
            try:
                await handle(event)
            except DeadLetter as exc:
                await _park(queue, message, str(exc), policy, send)
            except Exception as exc:
                await _retry_later(queue, message, exc, policy, send)
            else:
                await message.ack()

    return on_message


async def _retry_later(
    queue: str,
    message: AbstractIncomingMessage,
    error: Exception,
    policy: RetryPolicy,
    send: Publisher,
) -> None:
    headers = dict(message.headers or {})
    attempt = int(header_number(headers, ATTEMPTS, 0)) + 1
    first_failure = round(header_number(headers, FIRST_FAILURE, policy.clock()))
    if policy.clock() - first_failure >= policy.horizon_seconds:
        reason = f"still failing after the {policy.horizon_seconds:.0f} s retry horizon: {error!r}"
        await _park(queue, message, reason, policy, send)
        return
    level, ttl = policy.next_delay(attempt)
    headers.update({ATTEMPTS: attempt, FIRST_FAILURE: first_failure})
    copy = persistent(message.body, headers, expiration=ttl)
    try:
        await send(retry_queue(queue, level), copy)
    except Exception as exc:  # the broker itself is in trouble: let it redeliver
        log.warning("message_retry_not_scheduled", error=repr(exc)[:300])
        await message.reject(requeue=True)
        return
    await message.ack()
    log.warning(
        "message_retry_scheduled",
        attempt=attempt,
        delay_seconds=round(ttl, 2),
        error=repr(error)[:300],
    )


async def _park(
    queue: str,
    message: AbstractIncomingMessage,
    reason: str,
    policy: RetryPolicy,
    send: Publisher,
) -> None:
    headers = dict(message.headers or {})
    now = round(policy.clock())
    headers.setdefault(FIRST_FAILURE, now)
    headers.update({PARK_REASON: reason[:500], PARKED_AT: now})
    headers.setdefault(ATTEMPTS, 0)
    try:
        await send(dead_letter_queue(queue), persistent(message.body, headers))
    except Exception as exc:
        log.warning("message_park_failed", error=repr(exc)[:300])
        await message.reject(requeue=True)
        return
    await message.ack()
    log.error("message_parked", queue=queue, reason=reason[:300], attempts=headers[ATTEMPTS])
