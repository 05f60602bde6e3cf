"""Move the messages of queues declared with older arguments into the topology of today.

    python -m service_kit.migrate_queues            (or: make migrate-queues)

RabbitMQ refuses to declare a queue again with other arguments (PRECONDITION_FAILED), so a
service of a newer version cannot start on queues an older one declared. For each queue of
`messaging.queue_arguments` whose arguments differ, this moves its messages into a holding
queue `<name>.migrating`, deletes the emptied queue, declares it anew, and moves the messages
back. Each message is published with confirms before it is acked where it was, so a crash
duplicates at most one and loses none; run it again and it finishes from the holding queues.
A message from a retry queue waits its level's whole delay again. Services of the new version
can keep running meanwhile: they cannot declare, so they consume nothing from the old queues;
services of the older version must be stopped first, since what they publish to a queue between
its drain and its deletion would be lost.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from service_kit.config import BrokerSettings
from service_kit.messaging import (
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    declare_exchanges,
    declare_queue,
    persistent,
    queue_arguments,
)

WORK_QUEUES = (RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED)
HOLDING = {"x-queue-type": "classic"}  # no TTL, no limit: nothing leaves it but a move


def holding_queue(name: str) -> str:
    return f"{name}.migrating"


async def migrate(url: str, work_queues: tuple[str, ...] = WORK_QUEUES) -> dict[str, int]:
    """Migrate every queue of `work_queues`' topology; returns the messages moved per queue."""
    moved: dict[str, int] = {}
    async with await aio_pika.connect_robust(url) as connection:
        async with connection.channel() as channel:
            await declare_exchanges(channel)  # before a retry moved back can expire
        for work_queue in work_queues:
            for name, arguments in queue_arguments(work_queue).items():
                holding = holding_queue(name)
                if not await _declares_as(connection, name, arguments):
                    await _move(connection, name, holding, HOLDING)
                if await _exists(connection, holding):  # this run's, or a crashed run's
                    moved[name] = await _move(connection, holding, name, arguments)
            async with connection.channel() as channel:
                await declare_queue(channel, work_queue)  # the bindings, as services declare
    return moved


async def _declares_as(
    connection: AbstractRobustConnection, name: str, arguments: dict[str, Any]
) -> bool:
    """Whether `name` is (or can now be) declared with `arguments`. A refusal closes the
    channel, so each check has its own."""
    try:
        async with connection.channel() as probe:
            await probe.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed:
        return False
    return True


async def _exists(connection: AbstractRobustConnection, name: str) -> bool:
    try:
        async with connection.channel() as probe:
            await probe.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        return False
    return True


async def _move(
    connection: AbstractRobustConnection, source: str, target: str, arguments: dict[str, Any]
) -> int:
    """Move every message of `source` into `target` (declared with `arguments`), each
    confirmed there before it is acked here, then delete the drained `source`. Headers and body
    go along; a per-message TTL does not. A channel of its own: RabbitMQ 3.10's channel keeps a
    deleted queue's type, and crashes on a publish to a queue declared again as another type."""
    async with connection.channel(publisher_confirms=True, on_return_raises=True) as channel:
        await channel.declare_queue(target, durable=True, arguments=arguments)
        queue = await channel.declare_queue(source, passive=True)
        moved = 0
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            copy = persistent(message.body, dict(message.headers or {}))
            await channel.default_exchange.publish(copy, routing_key=target, mandatory=True)
            await message.ack()
            moved += 1
        await channel.queue_delete(source)  # drained (quorum queues refuse `if-empty`)
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m service_kit.migrate_queues", description=__doc__
    )
    parser.add_argument("--url", default=BrokerSettings().rabbitmq_url, help="RabbitMQ URL")
    args = parser.parse_args()
    moved = asyncio.run(migrate(args.url))
    for name, count in moved.items():
        print(f"migrated {name}: {count} message(s) moved into its new declaration")
    if not moved:
        print("every queue is declared as this version declares it: nothing to migrate")


if __name__ == "__main__":
    main()
