"""Small synchronous helpers for tests that look into or act on a RabbitMQ vhost directly."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlsplit

import aio_pika

from service_kit.messaging import ResourceEvent, declare_queue, publish
from tests.infra import Infrastructure


def _run(coroutine):
    return asyncio.run(coroutine)


def publish_body(url: str, queue: str, body: bytes) -> None:
    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            await declare_queue(channel, queue)
            await channel.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )

    _run(go())


def declare(url: str, queue: str) -> None:
    """Declare `queue` with the topology every service declares (as a restarted one would)."""

    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            await declare_queue(await connection.channel(), queue)

    _run(go())


def publish_event(url: str, queue: str, resource_id: int) -> None:
    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            await declare_queue(channel, queue)
            await publish(channel, queue, ResourceEvent(resource_id))

    _run(go())


def queue_depth(infra: Infrastructure, url: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of `queue` in the vhost of `url`, as the broker counts
    them. A message a consumer holds is unacknowledged until its handler acks it, so (0, 0)
    after a delivery means the handler finished and acked (or dead-lettered) it."""
    vhost = unquote(urlsplit(url).path[1:]) or "/"
    columns = ["name", "messages_ready", "messages_unacknowledged"]
    listing = infra.rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", *columns)
    for line in listing.splitlines():
        name, ready, unacked = line.split("\t")
        if name == queue:
            return int(ready), int(unacked)
    raise AssertionError(f"no queue {queue!r} in vhost {vhost!r}:\n{listing}")


def message_count(url: str, queue: str) -> int:
    """Messages ready in `queue`: 0 also while a consumer holds one unacked (see queue_depth)."""

    async def go() -> int:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return declared.declaration_result.message_count

    return _run(go())


def take_without_ack(url: str, queue: str, timeout: float = 10.0) -> bytes:
    """Receive one message and vanish without acking it, as a worker killed mid-message does."""

    async def go() -> bytes:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        declared = await declare_queue(channel, queue)
        async with asyncio.timeout(timeout), declared.iterator() as messages:
            async for message in messages:
                body = message.body
                break
        await connection.close()  # unacked: the broker redelivers it
        return body

    return _run(go())
