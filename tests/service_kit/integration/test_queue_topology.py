"""The queues every process declares, on the real broker: a message that keeps crashing its
worker is redelivered until `x-delivery-limit`, then parked in the queue's `.dlq`."""

from __future__ import annotations

from devstack.stack import wait_until
from service_kit.messaging import DELIVERY_LIMIT, RESOURCE_UPLOADED, dead_letter_queue
from tests.amqp import message_count, publish_event, take_without_ack


def test_a_message_that_keeps_crashing_its_worker_ends_in_its_dlq(rabbitmq_vhost):
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
