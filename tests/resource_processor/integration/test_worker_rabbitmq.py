"""The worker in-process against a real RabbitMQ (a private vhost) and stand-in peers over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest
from fastapi.testclient import TestClient

from devstack.testing.mp3 import make_mp3, not_mp3
from devstack.testing.stack import free_port, wait_until
from resource_processor.app import create_app
from resource_processor.config import Settings
from service_kit.messaging import (
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    ResourceEvent,
    dead_letter_queue,
    publish,
)
from tests.infra import RabbitVhost
from tests.resource_processor.integration.conftest import PeerStubs

UPLOADED_DLQ = dead_letter_queue(RESOURCE_UPLOADED)


class BrokerProbe:
    """The test's own view of the vhost: publish to a queue, wait for a message in one."""

    def __init__(self, url: str) -> None:
        self.url = url

    def publish_event(self, resource_id: int) -> None:
        asyncio.run(self._publish(ResourceEvent(resource_id)))

    def publish_body(self, body: bytes) -> None:
        asyncio.run(self._publish(body))

    def next_body(self, queue: str, timeout: float = 20.0) -> bytes:
        return asyncio.run(self._next_body(queue, timeout))

    async def _publish(self, what: ResourceEvent | bytes) -> None:
        async with await aio_pika.connect(self.url) as connection:
            channel = await connection.channel(publisher_confirms=True)
            if isinstance(what, ResourceEvent):
                await publish(channel, RESOURCE_UPLOADED, what)
            else:
                message = aio_pika.Message(what, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await channel.default_exchange.publish(message, routing_key=RESOURCE_UPLOADED)

    async def _next_body(self, queue_name: str, within_seconds: float) -> bytes:
        deadline = time.monotonic() + within_seconds
        async with await aio_pika.connect(self.url) as connection:
            queue = await (await connection.channel()).get_queue(queue_name, ensure=True)
            while time.monotonic() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    return message.body
                await asyncio.sleep(0.05)
        raise TimeoutError(f"no message in {queue_name} within {within_seconds} s")


def event_body(resource_id: int) -> dict[str, Any]:
    return {"resourceId": resource_id}


@pytest.fixture
def settings(rabbitmq_vhost: RabbitVhost, peer_stubs: PeerStubs) -> Settings:
    return Settings(
        port=free_port(),
        rabbitmq_url=rabbitmq_vhost.url,
        resource_service_url=peer_stubs.resource_service_url,
        song_service_url=peer_stubs.song_service_url,
        retry_attempts=2,
        retry_min_wait_seconds=0.01,
    )


@pytest.fixture
def worker(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:  # runs the lifespan: it starts connecting
        # Connected, queues declared and consuming (the link works in the background).
        wait_until(lambda: client.get("/health").json()["checks"]["broker"]["status"] == "UP", 30)
        yield client


@pytest.fixture
def broker(rabbitmq_vhost: RabbitVhost) -> BrokerProbe:
    return BrokerProbe(rabbitmq_vhost.url)


def test_uploaded_resource_is_saved_as_a_song_and_announced(
    worker: TestClient, broker: BrokerProbe, peer_stubs: PeerStubs
) -> None:
    peer_stubs.resources[41] = make_mp3(3, title="Live", artist="Band", album="Tour", year=1999)
    broker.publish_event(41)
    assert json.loads(broker.next_body(RESOURCE_PROCESSED)) == event_body(41)
    assert peer_stubs.songs == {
        41: {
            "id": 41,
            "name": "Live",
            "artist": "Band",
            "album": "Tour",
            "duration": "00:03",
            "year": "1999",
        }
    }


def test_metrics_count_the_messages_by_outcome(
    worker: TestClient, broker: BrokerProbe, peer_stubs: PeerStubs
) -> None:
    def processed() -> float:
        for line in worker.get("/metrics").text.splitlines():
            if line.startswith('resource_processor_messages_total{outcome="processed"}'):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = processed()
    peer_stubs.resources[45] = make_mp3(1)
    broker.publish_event(45)
    assert json.loads(broker.next_body(RESOURCE_PROCESSED)) == event_body(45)
    assert processed() == before + 1
    assert "resilience4j" not in worker.get("/metrics").text  # the worker has no breaker


def test_poison_message_is_dead_lettered_and_the_worker_keeps_going(
    worker: TestClient, broker: BrokerProbe, peer_stubs: PeerStubs
) -> None:
    peer_stubs.resources[42] = make_mp3(1)
    broker.publish_body(b"not json at all")
    broker.publish_event(42)
    assert broker.next_body(UPLOADED_DLQ) == b"not json at all"
    assert json.loads(broker.next_body(RESOURCE_PROCESSED)) == event_body(42)
    assert set(peer_stubs.songs) == {42}


def test_unreadable_audio_is_dead_lettered_without_a_song(
    worker: TestClient, broker: BrokerProbe, peer_stubs: PeerStubs
) -> None:
    peer_stubs.resources[43] = not_mp3()
    broker.publish_event(43)
    assert json.loads(broker.next_body(UPLOADED_DLQ)) == event_body(43)
    assert peer_stubs.songs == {}


def test_consuming_resumes_after_the_broker_drops_the_connection(
    worker: TestClient, broker: BrokerProbe, peer_stubs: PeerStubs, rabbitmq_vhost: RabbitVhost
) -> None:
    peer_stubs.resources[44] = make_mp3(1)
    rabbitmq_vhost.close_connections()
    # The drop is real: the worker sees its link down (aio-pika waits 5 s before reconnecting).
    wait_until(lambda: worker.get("/health").status_code == 503, 5, "the worker saw the drop")
    assert worker.get("/health").json()["checks"]["broker"]["status"] == "DOWN"
    broker.publish_event(44)
    # aio-pika's robust connection reconnects (after its 5 s interval) and restores the consumer.
    assert json.loads(broker.next_body(RESOURCE_PROCESSED, timeout=30)) == event_body(44)
    assert worker.get("/health").json()["checks"]["broker"] == {"status": "UP", "link": "connected"}


def test_health_reports_the_broker_up_and_nothing_parked(worker: TestClient) -> None:
    response = worker.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "UP"
    assert body["checks"]["broker"] == {"status": "UP", "link": "connected"}
    assert body["checks"]["deadLetters"]["status"] == "UP"


def test_it_starts_while_the_broker_is_unreachable_and_says_so(peer_stubs: PeerStubs) -> None:
    settings = Settings(
        rabbitmq_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        resource_service_url=peer_stubs.resource_service_url,
        song_service_url=peer_stubs.song_service_url,
    )
    with TestClient(create_app(settings)) as worker:  # it keeps trying, in the background
        response = worker.get("/health")
        assert response.status_code == 503
        assert response.json()["checks"]["broker"]["status"] == "DOWN"
        assert response.json()["checks"]["broker"]["link"] == "connecting"
