"""The retry and park policy, where it is decided (`messaging.message_handler`): a fake message
and a fake publisher, no broker. The ladder, the headers, the horizon, parking on `DeadLetter`
and on a bad body, and the requeue when the copy cannot be published."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
import structlog.contextvars
import structlog.testing

from service_kit.messaging import (
    ATTEMPTS,
    FIRST_FAILURE,
    PARK_REASON,
    PARKED_AT,
    RETRY_DELAYS_SECONDS,
    RETRY_JITTER,
    DeadLetter,
    PoisonMessage,
    ResourceEvent,
    RetryPolicy,
    dead_letter_queue,
    message_handler,
    persistent,
    retry_queue,
)

QUEUE = "resource.uploaded"
NOW = 1_800_000_000.0


@dataclass
class FakeMessage:
    """What `message_handler` reads of an incoming message, and what it did with it."""

    body: bytes = b'{"resourceId": 7}'
    headers: dict[str, Any] = field(default_factory=dict)
    acked: bool = False
    requeued: bool = False

    async def ack(self) -> None:
        self.acked = True

    async def reject(self, requeue: bool = False) -> None:
        self.requeued = requeue


@dataclass
class FakePublisher:
    sent: list[tuple[str, aio_pika.Message]] = field(default_factory=list)
    fails: bool = False
    error: Exception = field(default_factory=lambda: ConnectionError("the broker is away"))

    async def __call__(self, queue: str, message: aio_pika.Message) -> None:
        if self.fails:
            raise self.error
        self.sent.append((queue, message))


def handle(
    failure: Exception | None, message: FakeMessage, publisher: FakePublisher, **kw: Any
) -> list[ResourceEvent]:
    seen: list[ResourceEvent] = []

    async def handler(event: ResourceEvent) -> None:
        seen.append(event)
        if failure is not None:
            raise failure

    policy = RetryPolicy(clock=lambda: kw.get("now", NOW), **kw.get("policy", {}))
    asyncio.run(message_handler(QUEUE, handler, policy, publisher)(message))  # type: ignore[arg-type]
    return seen


def test_a_handled_message_is_acked_and_nothing_is_published() -> None:
    message, publisher = FakeMessage(), FakePublisher()
    assert handle(None, message, publisher) == [ResourceEvent(7)]
    assert message.acked and not message.requeued
    assert publisher.sent == []


@pytest.mark.parametrize(
    ("attempts_before", "level"),
    [(0, 1), (1, 2), (2, 5), (3, 10), (4, 20), (5, 30), (6, 30), (40, 30)],
)
def test_a_transient_failure_climbs_the_ladder_then_stays_on_its_last_rung(
    attempts_before: int, level: int
) -> None:
    headers = {ATTEMPTS: attempts_before, FIRST_FAILURE: NOW - 5} if attempts_before else {}
    message, publisher = FakeMessage(headers=headers), FakePublisher()
    handle(OSError("the peer is away"), message, publisher)
    [(queue, copy)] = publisher.sent
    assert queue == retry_queue(QUEUE, level)
    assert copy.headers[ATTEMPTS] == attempts_before + 1
    # The first failure is kept from the first attempt on, in whole epoch seconds.
    assert copy.headers[FIRST_FAILURE] == (NOW - 5 if attempts_before else NOW)
    assert isinstance(copy.headers[FIRST_FAILURE], int)
    ttl = copy.expiration
    assert isinstance(ttl, float | int)
    assert level * (1 - RETRY_JITTER) <= ttl <= level
    assert copy.body == message.body
    assert copy.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.acked  # after the copy was confirmed


def test_the_ladder_is_the_documented_one() -> None:
    assert RETRY_DELAYS_SECONDS == (1, 2, 5, 10, 20, 30)


@pytest.mark.parametrize("past", [0, 1, 3000])
def test_past_the_horizon_the_message_is_parked_with_its_reason(past: int) -> None:
    horizon = 3600
    headers = {ATTEMPTS: 9, FIRST_FAILURE: NOW - horizon - past}
    message, publisher = FakeMessage(headers=headers), FakePublisher()
    handle(OSError("still away"), message, publisher, policy={"horizon_seconds": horizon})
    [(queue, copy)] = publisher.sent
    assert queue == dead_letter_queue(QUEUE)
    assert "still failing after the 3600 s retry horizon" in str(copy.headers[PARK_REASON])
    assert "still away" in str(copy.headers[PARK_REASON])
    assert copy.headers[PARKED_AT] == NOW
    assert copy.headers[ATTEMPTS] == 9
    assert message.acked


def test_one_second_inside_the_horizon_is_still_retried() -> None:
    headers = {ATTEMPTS: 9, FIRST_FAILURE: NOW - 3599}
    message, publisher = FakeMessage(headers=headers), FakePublisher()
    handle(OSError("away"), message, publisher, policy={"horizon_seconds": 3600})
    assert publisher.sent[0][0] == retry_queue(QUEUE, 30)


def test_dead_letter_parks_at_once_with_its_reason_and_no_attempts() -> None:
    message, publisher = FakeMessage(), FakePublisher()
    handle(DeadLetter("a 4xx no retry fixes"), message, publisher)
    [(queue, copy)] = publisher.sent
    assert queue == dead_letter_queue(QUEUE)
    assert copy.headers[PARK_REASON] == "a 4xx no retry fixes"
    assert copy.headers[ATTEMPTS] == 0
    assert copy.headers[FIRST_FAILURE] == copy.headers[PARKED_AT] == NOW
    assert message.acked


@pytest.mark.parametrize(
    "body", [b"not json", b'{"resourceId": 0}', b'{"resourceId": "7"}', b"[]", b'{"id": 7}']
)
def test_a_bad_body_is_parked_without_calling_the_handler(body: bytes) -> None:
    message, publisher = FakeMessage(body=body), FakePublisher()
    assert handle(None, message, publisher) == []
    [(queue, copy)] = publisher.sent
    assert queue == dead_letter_queue(QUEUE)
    assert copy.body == body
    assert "not a resource" in str(copy.headers[PARK_REASON])
    assert message.acked


@pytest.mark.parametrize("failure", [OSError("away"), DeadLetter("never")], ids=["retry", "park"])
def test_a_copy_that_cannot_be_published_requeues_the_original(failure: Exception) -> None:
    message, publisher = FakeMessage(), FakePublisher(fails=True)
    handle(failure, message, publisher)
    assert message.requeued and not message.acked


# --- what a mutation run found unchecked (docs/mutation.md): the lines an operator reads ------


def test_a_scheduled_retry_is_logged_with_its_attempt_delay_and_error() -> None:
    message, publisher = FakeMessage(), FakePublisher()
    with structlog.testing.capture_logs() as logs:
        handle(OSError("the peer is away"), message, publisher)
    [line] = [entry for entry in logs if entry["event"] == "message_retry_scheduled"]
    ttl = publisher.sent[0][1].expiration  # as the copy carries it, in whole ms
    assert isinstance(ttl, float | int)
    delay = line["delay_seconds"]
    assert line["attempt"] == 1 and abs(delay - ttl) < 0.01 and delay == round(delay, 2)
    assert line["error"] == repr(OSError("the peer is away"))
    assert line["log_level"] == "warning"


def test_a_parked_message_is_logged_with_its_queue_reason_and_attempts() -> None:
    message, publisher = FakeMessage(headers={ATTEMPTS: 3}), FakePublisher()
    reason = "x" * 600
    with structlog.testing.capture_logs() as logs:
        handle(DeadLetter(reason), message, publisher)
    [line] = [entry for entry in logs if entry["event"] == "message_parked"]
    assert (line["queue"], line["reason"], line["attempts"]) == (QUEUE, "x" * 300, 3)
    assert line["log_level"] == "error"
    # The header keeps more of the reason than the log line does, and no more than 500 chars.
    assert publisher.sent[0][1].headers[PARK_REASON] == "x" * 500


@pytest.mark.parametrize(
    ("failure", "event"),
    [
        (OSError("away"), "message_retry_not_scheduled"),
        (DeadLetter("never"), "message_park_failed"),
    ],
    ids=["retry", "park"],
)
def test_a_copy_that_cannot_be_published_is_logged_with_the_brokers_error(
    failure: Exception, event: str
) -> None:
    message, publisher = FakeMessage(), FakePublisher(fails=True)
    with structlog.testing.capture_logs() as logs:
        handle(failure, message, publisher)
    [line] = [entry for entry in logs if entry["event"] == event]
    assert line["error"] == repr(ConnectionError("the broker is away"))
    assert line["log_level"] == "warning"


def test_a_delete_event_carries_its_objects_through_its_body() -> None:
    event = ResourceEvent(7, (("resources-staging", "staging/a.mp3"), ("b", "permanent/b.mp3")))
    assert ResourceEvent.from_body(event.to_body()) == event


@pytest.mark.parametrize(
    "objects", [[{"bucket": "", "key": "k"}], [{"bucket": "b", "key": 5}]], ids=["empty", "number"]
)
def test_object_locations_must_be_strings_with_something_in_them(
    objects: list[dict[str, object]],
) -> None:
    body = json.dumps({"resourceId": 7, "objects": objects}).encode()
    with pytest.raises(PoisonMessage, match=r"^not object locations: "):
        ResourceEvent.from_body(body)


def test_what_is_published_is_persistent_json() -> None:
    message = persistent(b'{"resourceId": 7}')
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


def test_every_line_the_handler_logs_names_the_queue_and_the_resource() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(event: ResourceEvent) -> None:
        seen.append(structlog.contextvars.get_contextvars())

    policy = RetryPolicy(clock=lambda: NOW)
    asyncio.run(message_handler(QUEUE, handler, policy, FakePublisher())(FakeMessage()))  # type: ignore[arg-type]
    assert seen == [{"queue": QUEUE, "resource_id": 7}]


def test_a_poison_message_is_named_by_its_first_100_bytes() -> None:
    body = b"x" * 300
    with pytest.raises(PoisonMessage) as caught:
        ResourceEvent.from_body(body)
    assert str(caught.value) == f"not a resource event: {body[:100]!r}"
    objects = [{"bucket": "", "key": "k" * 300}]
    with pytest.raises(PoisonMessage) as caught:
        ResourceEvent.from_body(json.dumps({"resourceId": 7, "objects": objects}).encode())
    assert str(caught.value) == f"not object locations: {(('', 'k' * 300),)!r}"[:200]


@pytest.mark.parametrize("fails", ["handler", "retry copy", "park copy"])
def test_long_errors_are_logged_to_300_characters(fails: str) -> None:
    """The handler's error in `message_retry_scheduled`, the broker's in the lines saying a
    retry or park copy could not be published: each cut at 300 characters."""
    long = "z" * 400
    failure = DeadLetter("never") if fails == "park copy" else OSError(long)
    publisher = FakePublisher(fails=fails != "handler", error=ConnectionError(long))
    with structlog.testing.capture_logs() as logs:
        handle(failure, FakeMessage(), publisher)
    event = {
        "handler": "message_retry_scheduled",
        "retry copy": "message_retry_not_scheduled",
        "park copy": "message_park_failed",
    }[fails]
    [line] = [entry for entry in logs if entry["event"] == event]
    expected = OSError(long) if fails == "handler" else ConnectionError(long)
    assert line["error"] == repr(expected)[:300]
