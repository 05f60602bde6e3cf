"""The broker link on the real broker: transient failures come back through the delayed-retry
queues with their attempt count; what cannot succeed, or outlives the horizon, is parked with
its reason; an unroutable publish raises."""

from __future__ import annotations

import asyncio
from typing import Any

import aio_pika
import pytest
from aio_pika.exceptions import DeliveryError

from devstack.testing.stack import wait_until
from service_kit.broker import BrokerLink, BrokerUnavailable
from service_kit.messaging import (
    ATTEMPTS,
    FIRST_FAILURE,
    PARK_REASON,
    PARKED_AT,
    RESOURCE_UPLOADED,
    DeadLetter,
    ResourceEvent,
    dead_letter_queue,
)
from tests.amqp import link_running, message_count, on_loop_of, publish_body
from tests.infra import RabbitVhost


def send_one(link: BrokerLink) -> None:
    wait_until(lambda: link.is_up, 15, "the link connected")
    on_loop_of(link, link.publish(RESOURCE_UPLOADED, ResourceEvent(5)))


def next_parked(url: str, queue: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(dead_letter_queue(queue), passive=True)
            message = await dlq.get(no_ack=True)
            return {"body": message.body, **(message.headers or {})}

    return asyncio.run(go())


def test_a_transient_failure_comes_back_later_with_its_attempt_count(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    seen: list[int] = []

    async def flaky(event: ResourceEvent) -> None:
        seen.append(len(seen))
        if len(seen) <= 2:
            raise OSError("the peer is away")

    with link_running(rabbitmq_vhost.url, flaky) as link:
        send_one(link)
        wait_until(lambda: len(seen) == 3, 20, "handled on the third delivery")
    assert message_count(rabbitmq_vhost.url, dead_letter_queue(RESOURCE_UPLOADED)) == 0
    assert message_count(rabbitmq_vhost.url, RESOURCE_UPLOADED) == 0


@pytest.mark.parametrize(
    ("failure", "horizon", "reason"),
    [
        (DeadLetter("no retry fixes this"), 60, "no retry fixes this"),
        (OSError("still away"), 0, "still failing after the 0 s retry horizon"),
    ],
    ids=["dead-letter", "past-the-horizon"],
)
def test_what_cannot_succeed_is_parked_with_its_reason(
    rabbitmq_vhost: RabbitVhost, failure: Exception, horizon: int, reason: str
) -> None:
    async def failing(event: ResourceEvent) -> None:
        raise failure

    url, dlq = rabbitmq_vhost.url, dead_letter_queue(RESOURCE_UPLOADED)
    with link_running(url, failing, horizon) as link:
        send_one(link)
        wait_until(lambda: message_count(url, dlq) == 1, 15, "parked")
    parked = next_parked(url, RESOURCE_UPLOADED)
    assert parked["body"] == b'{"resourceId": 5}'
    assert reason in parked[PARK_REASON]
    assert {ATTEMPTS, FIRST_FAILURE, PARKED_AT} <= parked.keys()


def test_a_poison_message_is_parked_and_the_next_one_is_handled(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    url, handled = rabbitmq_vhost.url, []
    publish_body(url, RESOURCE_UPLOADED, b"not json at all")

    async def record(event: ResourceEvent) -> None:
        handled.append(event.resource_id)

    with link_running(url, record) as link:
        send_one(link)
        wait_until(lambda: handled == [5], 15, "the next one handled")
    parked = next_parked(url, RESOURCE_UPLOADED)
    assert parked["body"] == b"not json at all"
    assert "not a resource event" in parked[PARK_REASON]


def test_an_unroutable_publish_raises_instead_of_counting_as_sent(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    with link_running(rabbitmq_vhost.url, None) as link:
        wait_until(lambda: link.is_up, 15, "the link connected")
        with pytest.raises(DeliveryError):
            on_loop_of(link, link.publish("no.such.queue", ResourceEvent(1)))


def test_a_link_to_nowhere_keeps_trying_and_says_since_when() -> None:
    with link_running("amqp://guest:guest@127.0.0.1:1/", None) as link:
        # A few tries have failed by the time the test looks: still trying, not dead.
        wait_until(lambda: link.status().get("downSeconds", 0) >= 1, 10, "down a second")
        assert link.status()["link"] == "connecting"
        with pytest.raises(BrokerUnavailable):
            on_loop_of(link, link.publish(RESOURCE_UPLOADED, ResourceEvent(1)))
