"""Replay a dead-letter queue: move every message of `<queue>.dlq` back to `<queue>`.

    python -m service_kit.replay resource.uploaded      (or: make replay-dlq QUEUE=...)

Run it once the cause is fixed (for example the Song Service is back). Each message is
published to the queue with confirms before it is acked on the DLQ, so a crash mid-replay
duplicates at most one message and never loses one; consumers are idempotent.
"""

from __future__ import annotations

import argparse
import asyncio

import aio_pika

from service_kit.config import BrokerSettings
from service_kit.messaging import (
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    dead_letter_queue,
    declare_queue,
)


async def replay(url: str, queue: str) -> int:
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_queue(channel, queue)
        dlq = await channel.get_queue(dead_letter_queue(queue))
        moved = 0
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            await channel.default_exchange.publish(
                aio_pika.Message(
                    message.body,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=queue,
                mandatory=True,
            )
            await message.ack()
            moved += 1
        return moved


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m service_kit.replay", description=__doc__)
    parser.add_argument("queue", choices=[RESOURCE_UPLOADED, RESOURCE_PROCESSED])
    parser.add_argument("--url", default=BrokerSettings().rabbitmq_url, help="RabbitMQ URL")
    args = parser.parse_args()
    moved = asyncio.run(replay(args.url, args.queue))
    print(f"replayed {moved} message(s) from {dead_letter_queue(args.queue)} to {args.queue}")


if __name__ == "__main__":
    main()
