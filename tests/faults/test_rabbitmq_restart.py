"""A real RabbitMQ restart (`rabbitmqctl stop_app` / `start_app` on the test broker), with
uploads before, during and after it: every accepted upload ends PERMANENT, with its tags."""

from __future__ import annotations

import time

import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from tests.fixture_types import RecordProperty, StackStarter
from tests.infra import Infrastructure

OUTAGE_SECONDS = 5


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("rabbitmq_restart")


def uploads(stack: Stack, label: str, count: int) -> list[int]:
    answers = [stack.upload(make_mp3(1, title=f"{label} {i}")) for i in range(count)]
    assert [a.status_code for a in answers] == [200] * count, [a.text for a in answers]
    return [a.json()["id"] for a in answers]


def broker_status(stack: Stack) -> str:
    return str(stack.http.get(f"{stack.resource.url}/health").json()["checks"]["broker"]["status"])


def test_every_upload_survives_a_real_broker_restart(
    stack: Stack, infra: Infrastructure, record_property: RecordProperty
) -> None:
    ids = uploads(stack, "before", 3)
    for resource_id in ids:
        stack.wait_permanent(resource_id, timeout=30)
    infra.rabbitmqctl("stop_app")
    try:
        wait_until(lambda: broker_status(stack) == "DEGRADED", 15, "the service saw it go")
        during = uploads(stack, "during", 5)
        time.sleep(OUTAGE_SECONDS)  # the outage lasts a while: the length is the fault itself
        for resource_id in during:
            assert stack.resource_row(resource_id).state == "STAGING"  # waiting in the outbox
    finally:
        infra.rabbitmqctl("start_app")
    back = time.monotonic()
    ids += during + uploads(stack, "after", 3)
    for resource_id in ids:
        stack.wait_permanent(resource_id, timeout=60)
        assert stack.song_of(resource_id).status_code == 200
    record_property("seconds_to_all_permanent_after_start_app", round(time.monotonic() - back, 1))
    assert broker_status(stack) == "UP"
