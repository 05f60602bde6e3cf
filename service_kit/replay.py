"""Replay a dead-letter queue: move the messages parked in `<queue>.dlq` back to `<queue>`.

    python -m service_kit.replay resource.uploaded      (or: make replay-dlq QUEUE=...)

Run it once the cause is fixed. It moves each message parked when it starts once, with a fresh
retry horizon, says how many, and stops: a message that fails again is parked again, not looped.
Each is published with confirms before it is acked on the DLQ, so a crash mid-replay duplicates
at most one message and never loses one; consumers are idempotent.
"""

from __future__ import annotations

import argparse
import asyncio

import aio_pika

from service_kit.config import BrokerSettings
from service_kit.messaging import (
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    dead_letter_queue,
    declare_queue,
    persistent,
)


async def replay(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_queue(channel, queue)
        dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
        parked = dlq.declaration_result.message_count or 0
        moved = 0
        while moved < parked and (message := await dlq.get(no_ack=False, fail=False)):
            await channel.default_exchange.publish(
                persistent(message.body), routing_key=queue, mandatory=True
            )
            await message.ack()
            moved += 1
        return moved


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service_kit.replay", description=__doc__)
    parser.add_argument("queue", choices=[RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED])
    parser.add_argument("--url", default=BrokerSettings().rabbitmq_url, help="RabbitMQ URL")
    args = parser.parse_args()
    moved = asyncio.run(replay(args.url, args.queue))
    print(f"replayed {moved} message(s) from {dead_letter_queue(args.queue)} to {args.queue}")


if __name__ == "__main__":
    main()
