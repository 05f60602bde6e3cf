"""`make migrate-queues` on the real broker: the queues an older version declared (a quorum
`.dlq`, classic retry queues) hold messages; the migration moves every one of them into the
queues as this version declares them, and leaves no holding queue behind."""

from __future__ import annotations

import asyncio

import aio_pika

from service_kit.messaging import (
    DEAD_LETTER_EXCHANGE,
    PARK_REASON,
    RESOURCE_UPLOADED,
    RETRY_DELAYS_SECONDS,
    dead_letter_queue,
    declare_queue,
    retry_queue,
)
from service_kit.migrate_queues import holding_queue, migrate
from tests.amqp import exists, message_count, publish_body, take_one
from tests.infra import RabbitVhost

QUEUE = RESOURCE_UPLOADED


async def declare_as_the_last_version(url: str) -> None:
    """The topology as it was declared before this version: the arguments that now differ."""
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.declare_exchange(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        await channel.declare_queue(
            dead_letter_queue(QUEUE), durable=True, arguments={"x-queue-type": "quorum"}
        )
        for delay in RETRY_DELAYS_SECONDS:
            await channel.declare_queue(
                retry_queue(QUEUE, delay),
                durable=True,
                arguments={
                    "x-message-ttl": delay * 1000,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": QUEUE,
                },
            )


def test_migrate_queues_moves_every_waiting_message_into_the_new_declarations(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    url = rabbitmq_vhost.url
    asyncio.run(declare_as_the_last_version(url))
    for n in (1, 2):
        publish_body(
            url,
            dead_letter_queue(QUEUE),
            b'{"resourceId": %d}' % n,
            {PARK_REASON: f"r{n}"},
            declared=False,
        )
    # An hour's wait, so that the message is still in its retry queue when the test looks.
    publish_body(url, retry_queue(QUEUE, 30), b'{"resourceId": 3}', declared=False)

    moved = asyncio.run(migrate(url, (QUEUE,)))

    assert moved == {dead_letter_queue(QUEUE): 2, retry_queue(QUEUE, 30): 1} | {
        retry_queue(QUEUE, d): 0 for d in RETRY_DELAYS_SECONDS if d != 30
    }
    asyncio.run(declare_today(url))  # what a service of this version does: no longer refused
    parked = [take_one(url, dead_letter_queue(QUEUE)) for _ in (1, 2)]
    assert [(m.body, m.headers[PARK_REASON]) for m in parked] == [
        (b'{"resourceId": 1}', "r1"),
        (b'{"resourceId": 2}', "r2"),
    ]
    # The retried one waits a whole level again, then goes to its work queue.
    assert message_count(url, retry_queue(QUEUE, 30)) + message_count(url, QUEUE) == 1
    for name in [dead_letter_queue(QUEUE), *(retry_queue(QUEUE, d) for d in RETRY_DELAYS_SECONDS)]:
        assert not exists(url, holding_queue(name))
    assert asyncio.run(migrate(url, (QUEUE,))) == {}  # a second run finds nothing to do


async def declare_today(url: str) -> None:
    async with await aio_pika.connect(url) as connection:
        await declare_queue(await connection.channel(), QUEUE)
