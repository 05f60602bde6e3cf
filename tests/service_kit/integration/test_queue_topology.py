"""The queues every process declares, on the real broker: a message that keeps crashing its
worker is redelivered until `x-delivery-limit`, then parked in the queue's `.dlq`; watching a
parked message never uses it up; a delayed retry outlives a missing work queue."""

from __future__ import annotations

import time

from devstack.testing.stack import wait_until
from service_kit.messaging import (
    DELIVERY_LIMIT,
    PARKED_AT,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    RETRY_ORPHANS,
    dead_letter_queue,
    retry_queue,
)
from tests.amqp import (
    declare,
    delete_queue,
    exists,
    link_running,
    message_count,
    on_loop_of,
    publish_body,
    publish_event,
    take_one,
    take_without_ack,
)
from tests.infra import RabbitVhost


def test_a_message_that_keeps_crashing_its_worker_ends_in_its_dlq(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    url, dlq = rabbitmq_vhost.url, dead_letter_queue(RESOURCE_UPLOADED)
    publish_event(url, RESOURCE_UPLOADED, 77)
    deliveries = 0
    while deliveries <= DELIVERY_LIMIT + 2:
        # A worker takes it and dies without an ack, as a crash does.
        assert take_without_ack(url, RESOURCE_UPLOADED, timeout=5) == b'{"resourceId": 77}'
        deliveries += 1
        back_or_parked = wait_until(
            lambda: message_count(url, RESOURCE_UPLOADED) + 2 * message_count(url, dlq), 5
        )
        if back_or_parked == 2:
            break
    # Quorum queues count the first delivery too: parked after the limit's redeliveries.
    assert deliveries == DELIVERY_LIMIT + 1
    assert message_count(url, RESOURCE_UPLOADED) == 0
    assert message_count(url, dlq) == 1


def test_watching_a_parked_message_never_uses_it_up(rabbitmq_vhost: RabbitVhost) -> None:
    """The parked watch reads the head of each `.dlq` every 10 s. From RabbitMQ 4.0 a quorum
    queue drops a message returned 20 times (its default `delivery-limit`), and before 4.3 any
    return counts (rabbitmq.com/docs/4.3/nack, /docs/quorum-queues "Poison Message Handling"):
    40 looks must leave the message where it was, with no delivery counted."""
    url, dlq = rabbitmq_vhost.url, dead_letter_queue(RESOURCE_UPLOADED)
    declare(url, RESOURCE_UPLOADED)
    publish_body(
        url, dlq, b'{"resourceId": 9}', {PARKED_AT: round(time.time()) - 60}, declared=False
    )
    with link_running(url, None) as link:
        wait_until(lambda: link.is_up, 15, "the link connected")
        for _ in range(40):
            parked = on_loop_of(link, link.read_parked(dlq))
            assert parked.depth == 1
            assert 59 <= parked.oldest_age_seconds < 120
    message = take_one(url, dlq)
    assert message.body == b'{"resourceId": 9}'
    assert "x-delivery-count" not in (message.headers or {})
    assert set(message.headers or {}) == {PARKED_AT}


def test_a_retry_whose_work_queue_is_missing_waits_and_goes_once_it_is_back(
    rabbitmq_vhost: RabbitVhost,
) -> None:
    """Retry queues are classic and dead-letter at most once (RabbitMQ's "Dead Letter
    Exchanges" guide): an expired retry whose work queue is gone would be dropped. Their
    dead-letter exchange has an alternate exchange (rabbitmq.com/docs/ae), so it is kept among
    the orphans, and the next declare of the topology (a service connecting) sends it back:
    to its queue when that is there, round to the orphans when it is still missing."""
    url, queue = rabbitmq_vhost.url, RESOURCE_UPLOADED
    declare(url, queue)
    delete_queue(url, queue)  # the work queue is missing when the delay ends
    publish_body(url, retry_queue(queue, 1), b'{"resourceId": 11}', declared=False)
    wait_until(lambda: message_count(url, RETRY_ORPHANS) == 1, 10, "kept among the orphans")
    declare(url, RESOURCE_PROCESSED)  # another queue's declare: this one's is still missing
    assert message_count(url, RETRY_ORPHANS) == 1
    assert not exists(url, queue)
    declare(url, queue)  # back, as a restarted service declares it
    wait_until(lambda: message_count(url, queue) == 1, 10, "the retry delivered")
    delivered = take_one(url, queue)
    assert delivered.body == b'{"resourceId": 11}'
    deaths = delivered.headers["x-death"]
    assert isinstance(deaths, list) and isinstance(deaths[0], dict)
    assert deaths[0]["queue"] == retry_queue(queue, 1)
    assert message_count(url, RETRY_ORPHANS) == 0
