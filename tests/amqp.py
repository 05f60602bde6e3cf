"""Small synchronous helpers for tests that look into or act on a RabbitMQ vhost directly."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from service_kit.broker import BrokerLink
from service_kit.messaging import (
    RESOURCE_UPLOADED,
    ResourceEvent,
    RetryPolicy,
    declare_queue,
    publish,
)
from tests.infra import Infrastructure

T = TypeVar("T")
Handle = Callable[[ResourceEvent], Awaitable[None]]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def publish_body(
    url: str, queue: str, body: bytes, headers: dict[str, Any] | None = None, declared: bool = True
) -> None:
    """Publish with confirms; `declared=False` publishes to a queue as it is, undeclared."""

    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if declared:
                await declare_queue(channel, queue)
            message = aio_pika.Message(
                body, headers=headers or {}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
            )
            await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)

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


def exists(url: str, queue: str) -> bool:
    try:
        message_count(url, queue)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return False
    return True


def delete_queue(url: str, queue: str) -> None:
    async def go() -> None:
        async with await aio_pika.connect(url) as connection:
            await (await connection.channel()).queue_delete(queue)

    _run(go())


def take_one(url: str, queue: str) -> AbstractIncomingMessage:
    """Take the head of `queue` (acked): it fails when the queue is empty."""

    async def go() -> AbstractIncomingMessage:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return await declared.get(no_ack=True)

    return _run(go())


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
            count = declared.declaration_result.message_count
            assert count is not None  # a passive declare always answers with the count
            return count

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


@contextlib.contextmanager
def link_running(url: str, handle: Handle | None, horizon: float = 60) -> Iterator[BrokerLink]:
    """A BrokerLink on its own event loop in a thread, so the test can poll the broker."""
    declares = [RESOURCE_UPLOADED] if handle else []
    link = BrokerLink(url, 4, declares, RetryPolicy(horizon_seconds=horizon))
    if handle is not None:
        link.consume(RESOURCE_UPLOADED, handle)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(_start(link), loop).result(5)
    try:
        yield link
    finally:
        asyncio.run_coroutine_threadsafe(link.close(grace_seconds=1), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _start(link: BrokerLink) -> None:
    link.start()


def on_loop_of(link: BrokerLink, coroutine: Coroutine[Any, Any, T]) -> T:
    loop = link._tasks[0].get_loop()
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)
