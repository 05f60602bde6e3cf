"""Faults along the pipeline: no upload answers anything but 200 or the documented 503, no
file and no event is lost, nothing is left half-written or stuck (issue: reliability)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from devstack.testing.faultproxy import Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from resource_service.models import OutboxEvent, Resource
from service_kit.messaging import (
    RESOURCE_DELETED,
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    dead_letter_queue,
)
from service_kit.s3 import S3Client, object_exists
from tests.amqp import declare, message_count, publish_body, queue_depth
from tests.contract import assert_error, assert_no_internals
from tests.faults.pipeline.conftest import Proxies
from tests.fixture_types import RecordProperty
from tests.infra import Infrastructure

STAGING_BUCKET, PERMANENT_BUCKET = "resources-staging", "resources-permanent"


def upload_ok(stack: Stack, title: str) -> int:
    response = stack.upload(make_mp3(1, title=title))
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def counts(stack: Stack) -> tuple[int, int]:
    """(resource rows, outbox events) as stored."""
    engine = create_engine(stack.resource_database_url)
    with engine.connect() as conn:
        rows = conn.scalar(select(func.count()).select_from(Resource)) or 0
        events = conn.scalar(select(func.count()).select_from(OutboxEvent)) or 0
    engine.dispose()
    return rows, events


def staging_keys(stack: Stack, s3: S3Client) -> set[str]:
    """The objects this stack has in STAGING."""
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=STAGING_BUCKET, Prefix=stack.staging_prefix
    )
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def assert_exactly_one_permanent_object(stack: Stack, s3: S3Client, resource_id: int) -> None:
    row = stack.wait_permanent(resource_id, timeout=30)
    listed = s3.list_objects_v2(Bucket=PERMANENT_BUCKET, Prefix=row.key)
    assert [item["Key"] for item in listed.get("Contents", [])] == [row.key]
    wait_until(
        lambda: not object_exists(s3, row.staging_bucket, row.staging_key),
        10,
        f"STAGING leftover of {resource_id}",
    )
    assert stack.song_of(resource_id).status_code == 200


def test_rabbitmq_unreachable_for_10_seconds_during_uploads(
    stack: Stack, proxies: Proxies, s3: S3Client, record_property: RecordProperty
) -> None:
    proxies.rabbitmq.set_mode(Mode.CUT)
    ids: list[int] = []
    cut_until = time.monotonic() + 10
    while time.monotonic() < cut_until and len(ids) < 300:
        ids.append(upload_ok(stack, f"outage {len(ids)}"))
    health = stack.http.get(f"{stack.resource.url}/health").json()
    # The outage lasts its 10 s even if the bounded stream of uploads ended sooner.
    time.sleep(max(0.0, cut_until - time.monotonic()))
    assert health["checks"]["broker"]["status"] == "DEGRADED"
    assert health["checks"]["broker"]["pendingEvents"] >= len(ids)
    proxies.rabbitmq.set_mode(Mode.PASS)
    back = time.monotonic()

    assert len(ids) >= 10
    for resource_id in ids:
        stack.wait_permanent(resource_id, timeout=60)
    record_property("uploads_during_outage", len(ids))
    record_property("seconds_to_all_permanent_after_return", round(time.monotonic() - back, 1))
    assert_exactly_one_permanent_object(stack, s3, ids[-1])


def test_processor_killed_mid_message_is_redelivered(
    stack: Stack, s3: S3Client, infra: Infrastructure
) -> None:
    processor = stack.processors[0]
    stack.song.signal(signal.SIGSTOP)  # the worker blocks in POST /songs, mid-message
    resource_id = upload_ok(stack, "killed worker")
    # The precondition: the worker holds the message, delivered and not acked, when it dies.
    held = (0, 1)
    wait_until(lambda: queue_depth(infra, stack.rabbitmq_url, RESOURCE_UPLOADED) == held, 15)
    assert stack.logged("processor0", "resource_processed", resource_id=resource_id) == 0
    processor.signal(signal.SIGKILL)
    processor.running.wait()
    stack.song.signal(signal.SIGCONT)
    processor.start().wait_healthy()

    assert_exactly_one_permanent_object(stack, s3, resource_id)


def test_a_processor_stopped_mid_message_finishes_it_before_it_exits(
    stack: Stack, infra: Infrastructure
) -> None:
    processor = stack.processors[0]
    stack.song.signal(signal.SIGSTOP)  # the worker blocks in POST /songs, mid-message
    try:
        resource_id = upload_ok(stack, "drained")
        held = (0, 1)
        wait_until(lambda: queue_depth(infra, stack.rabbitmq_url, RESOURCE_UPLOADED) == held, 15)
        processor.signal(signal.SIGTERM)
        # The precondition: shutdown has begun with the message still in its hands.
        wait_until(
            lambda: stack.logged("processor0", "broker_link_closing", messages_in_flight=1), 10
        )
    finally:
        stack.song.signal(signal.SIGCONT)
    processor.running.wait(15)
    # No worker runs any more: PERMANENT means the drained message was finished and announced,
    # and nothing of it is left in the queue (acked, not requeued).
    stack.wait_permanent(resource_id, timeout=15)

    # The broker learns of the closed connection a moment after the exit (through the proxy);
    # an ack that never came would then make the message ready again, (1, 0), for good.
    def settled() -> tuple[int, int] | None:
        depth = queue_depth(infra, stack.rabbitmq_url, RESOURCE_UPLOADED)
        return None if depth == (0, 1) else depth

    assert wait_until(settled, 10) == (0, 0)
    processor.start().wait_healthy()


def test_resource_service_killed_between_copy_and_delete_is_repaired(
    stack: Stack, proxies: Proxies, s3: S3Client
) -> None:
    proxies.s3.hold(b"DELETE")  # the move's last step: delete the STAGING object
    resource_id = upload_ok(stack, "killed mover")
    wait_until(
        proxies.s3.holding.is_set, 15, lambda: f"the move reaching its delete\n{stack.logs()}"
    )
    stack.resource.signal(signal.SIGKILL)
    stack.resource.running.wait()
    row = stack.resource_row(resource_id)
    assert row.state == "PERMANENT"  # copied and updated ...
    assert object_exists(s3, row.staging_bucket, row.staging_key)  # ... but not deleted
    proxies.s3.hold(None)
    stack.resource.start().wait_healthy()

    assert_exactly_one_permanent_object(stack, s3, resource_id)


def test_resource_service_killed_between_copy_and_row_update_is_repaired(
    stack: Stack, s3: S3Client
) -> None:
    """The test holds the row's lock, so the move's UPDATE waits after its copy: killed then,
    the service leaves a PERMANENT copy beside a row still in STAGING."""
    for processor in stack.processors:
        processor.stop()  # the lock must be taken before the move can reach the row
    resource_id = upload_ok(stack, "killed before update")
    engine = create_engine(stack.resource_database_url)
    try:
        with engine.connect() as lock:
            lock.execute(
                text("SELECT id FROM resources WHERE id = :id FOR UPDATE"), {"id": resource_id}
            )
            for processor in stack.processors:
                processor.start()
            wait_until(
                lambda: waits_for_a_lock(engine, "UPDATE resources"), 30, "the move's UPDATE"
            )
            row = stack.resource_row(resource_id)
            copy = f"{stack.permanent_prefix}{row.staging_key.rsplit('/', 1)[-1]}"
            assert object_exists(s3, PERMANENT_BUCKET, copy)  # copied ...
            stack.resource.signal(signal.SIGKILL)
            stack.resource.running.wait()
            lock.rollback()
        row = stack.resource_row(resource_id)
        assert row.state == "STAGING"  # ... not recorded
        assert object_exists(s3, row.staging_bucket, row.staging_key)
    finally:
        engine.dispose()
    stack.resource.start().wait_healthy()
    for processor in stack.processors:
        processor.wait_healthy()

    assert_exactly_one_permanent_object(stack, s3, resource_id)


def waits_for_a_lock(engine: Engine, statement: str) -> bool:
    """A session of the Resource Service blocked on a lock, in a statement that starts so."""
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE :statement"
            ),
            {"statement": f"{statement}%"},
        )
        return bool(waiting.scalar_one() > 0)


# An upload's intent stands 5 + 2 + 3 s with these: it expires while the test watches.
QUICK_INTENTS = {
    "UPLOAD_MAX_SECONDS": "5",
    "UPLOAD_IDLE_SECONDS": "2",
    "UPLOAD_COMMIT_SECONDS": "3",
}


def test_resource_service_killed_between_the_s3_write_and_the_row_leaves_no_object(
    stack: Stack, s3: S3Client
) -> None:
    """The test locks `resources` against inserts, so an upload stops after its S3 write, at
    its row's INSERT: killed then, the object has no row. The intent the upload recorded
    before its write expires into a delete, and the object goes."""
    usual_env = dict(stack.resource.env)
    stack.resource.env.update(QUICK_INTENTS)
    stack.resource.restart().wait_healthy()
    before_rows, before_objects = counts(stack)[0], staging_keys(stack, s3)
    engine = create_engine(stack.resource_database_url)
    try:
        with engine.connect() as lock, ThreadPoolExecutor(1) as pool:
            lock.execute(text("LOCK TABLE resources IN SHARE MODE"))
            answer = pool.submit(stack.upload, make_mp3(1, title="killed before its row"))
            wait_until(lambda: waits_for_a_lock(engine, "INSERT INTO resources"), 30, "the INSERT")
            orphan = staging_keys(stack, s3) - before_objects
            assert len(orphan) == 1  # written, with no row
            stack.resource.signal(signal.SIGKILL)
            stack.resource.running.wait()
            lock.rollback()
            with pytest.raises(httpx2.TransportError):
                answer.result(10)
        stack.resource.start().wait_healthy()
        wait_until(lambda: not staging_keys(stack, s3) & orphan, 30, "the orphan removed")
        assert counts(stack)[0] == before_rows
    finally:
        engine.dispose()
        stack.resource.env = usual_env
        stack.resource.restart()


def test_events_a_dead_relay_claimed_are_published_once_its_claim_expires(
    stack: Stack, proxies: Proxies
) -> None:
    """A relay that claimed events and died before publishing them leaves them claimed (the
    test writes that claim); the surviving relay takes them over once it expires."""
    proxies.rabbitmq.set_mode(Mode.CUT)  # the event stays in the outbox, unclaimed
    wait_until(lambda: broker_health(stack)["status"] == "DEGRADED", 10, "the link down")
    resource_id = upload_ok(stack, "claimed by the dead")
    claimed = run_sql(
        stack,
        "UPDATE outbox SET claimed_until = now() + interval '15 seconds'"
        " WHERE resource_id = :id AND published_at IS NULL RETURNING claimed_until",
        id=resource_id,
    )
    assert claimed is not None
    proxies.rabbitmq.set_mode(Mode.PASS)
    up = {"status": "UP", "pendingEvents": 1, "parkedEvents": 0, "link": "connected"}
    wait_until(lambda: broker_health(stack) == up, 20)
    # The precondition: the survivor is connected while the claim still holds.
    assert run_sql(stack, "SELECT now() < :until", until=claimed)

    stack.wait_permanent(resource_id, timeout=40)
    published = run_sql(
        stack, "SELECT published_at FROM outbox WHERE resource_id = :id", id=resource_id
    )
    assert published >= claimed


def broker_health(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = stack.http.get(f"{stack.resource.url}/health").json()["checks"][
        "broker"
    ]
    return found


def run_sql(stack: Stack, sql: str, **params: object) -> Any:
    """One statement on the Resource Service's database, committed; its first value."""
    engine = create_engine(stack.resource_database_url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(sql), params).scalar_one_or_none()
    finally:
        engine.dispose()


def test_s3_unreachable_answers_503_and_leaves_nothing(
    stack: Stack, proxies: Proxies, record_property: RecordProperty
) -> None:
    before = counts(stack)
    proxies.s3.set_mode(Mode.CUT)
    started = time.perf_counter()
    response = stack.upload(make_mp3(1))
    elapsed = time.perf_counter() - started
    assert_error(response, 503, "Object storage unavailable, try again later")
    assert elapsed < 2 * 2 + 1  # two attempts of the 2 s S3 timeout, at the most
    record_property("seconds_to_503", round(elapsed, 2))
    assert counts(stack) == before
    proxies.s3.set_mode(Mode.PASS)
    stack.wait_permanent(upload_ok(stack, "s3 back"), timeout=10)


def test_postgres_unreachable_answers_503_and_leaves_no_object(
    stack: Stack, proxies: Proxies, s3: S3Client, record_property: RecordProperty
) -> None:
    before_rows, before_objects = counts(stack), staging_keys(stack, s3)
    proxies.postgres.set_mode(Mode.CUT)
    started = time.perf_counter()
    response = stack.upload(make_mp3(1))
    record_property("seconds_to_503", round(time.perf_counter() - started, 2))
    assert_error(response, 503, "Database unavailable, try again later")
    assert staging_keys(stack, s3) == before_objects  # the object written before the row is gone
    # Its own database gone, the service is DOWN: 503, and only which dependency, not why.
    health = stack.http.get(f"{stack.resource.url}/health")
    assert health.status_code == 503, health.text
    assert health.json()["status"] == "DOWN"
    assert health.json()["checks"]["database"] == {"status": "DOWN"}
    assert_no_internals(health.text)
    proxies.postgres.set_mode(Mode.PASS)
    assert counts(stack) == before_rows
    stack.wait_permanent(upload_ok(stack, "database back"), timeout=10)


SONG_OUTAGE_SECONDS = 120
DATABASE_OUTAGE_SECONDS = 60


def parked(stack: Stack) -> dict[str, int]:
    """What each dead-letter queue holds (the module's stack is shared: compare, not zero)."""
    queues = (RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED)
    return {q: message_count(stack.rabbitmq_url, dead_letter_queue(q)) for q in queues}


@pytest.mark.timeout(300)
def test_a_song_service_down_for_two_minutes_delays_the_uploads_and_parks_nothing(
    stack: Stack, s3: S3Client, record_property: RecordProperty
) -> None:
    before = parked(stack)
    stack.song.signal(signal.SIGKILL)
    stack.song.running.wait()
    ids = [upload_ok(stack, f"song service down {i}") for i in range(5)]
    # The outage lasts its two minutes: its length is the fault under test.
    time.sleep(SONG_OUTAGE_SECONDS)
    assert {stack.resource_row(i).state for i in ids} == {"STAGING"}
    stack.song.start().wait_healthy()
    back = time.monotonic()
    for resource_id in ids:  # no manual step: the delayed retries bring each one through
        stack.wait_permanent(resource_id, timeout=max(1.0, 30 - (time.monotonic() - back)))
    record_property("seconds_to_all_permanent_after_return", round(time.monotonic() - back, 1))
    for resource_id in ids:
        assert_exactly_one_permanent_object(stack, s3, resource_id)
    assert parked(stack) == before  # nothing parked


@pytest.mark.timeout(300)
def test_the_resource_database_refused_for_a_minute_during_moves_parks_nothing(
    stack: Stack, proxies: Proxies, s3: S3Client, record_property: RecordProperty
) -> None:
    before = parked(stack)
    ids = [upload_ok(stack, f"database away {i}") for i in range(5)]
    proxies.postgres.set_mode(Mode.CUT)  # downloads and moves in flight now fail, and retry
    time.sleep(DATABASE_OUTAGE_SECONDS)  # the outage lasts its minute
    proxies.postgres.set_mode(Mode.PASS)
    back = time.monotonic()
    for resource_id in ids:
        stack.wait_permanent(resource_id, timeout=max(1.0, 30 - (time.monotonic() - back)))
    record_property("seconds_to_all_permanent_after_return", round(time.monotonic() - back, 1))
    for resource_id in ids:
        assert_exactly_one_permanent_object(stack, s3, resource_id)
    assert parked(stack) == before  # nothing parked


def test_poison_is_parked_and_replay_moves_each_parked_message_once(
    stack: Stack, s3: S3Client
) -> None:
    dlq, rabbitmq = dead_letter_queue(RESOURCE_UPLOADED), stack.rabbitmq_url
    waiting = message_count(stack.rabbitmq_url, dlq)
    publish_body(stack.rabbitmq_url, RESOURCE_UPLOADED, b"not json at all")
    publish_body(stack.rabbitmq_url, RESOURCE_UPLOADED, b'{"resourceId": -1}')
    assert_exactly_one_permanent_object(stack, s3, upload_ok(stack, "after poison"))
    wait_until(lambda: message_count(stack.rabbitmq_url, dlq) == waiting + 2, 15, "both parked")
    assert stack.logged("processor0", "message_parked") >= 2
    # The worker shows what is parked (it looks every 10 s), in /health and in /metrics.
    worker = stack.processors[0].url
    wait_until(lambda: parked_in_health(stack, worker) == waiting + 2, 25, "parked in /health")
    metrics = stack.http.get(f"{worker}/metrics").text
    assert f'dead_letter_messages{{queue="{dlq}"}} {waiting + 2}.0' in metrics

    replay = subprocess.run(
        [sys.executable, "-m", "service_kit.replay", RESOURCE_UPLOADED, "--url", rabbitmq],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # Each message parked when it started is moved once; poison fails again, is parked again,
    # and the command has stopped instead of moving it round and round.
    assert f"replayed {waiting + 2} message(s)" in replay.stdout
    wait_until(lambda: message_count(stack.rabbitmq_url, dlq) == waiting + 2, 15, "parked again")


def parked_in_health(stack: Stack, url: str) -> int:
    dead_letters = stack.http.get(f"{url}/health").json()["checks"]["deadLetters"]
    depth = dead_letters["queues"].get(dead_letter_queue(RESOURCE_UPLOADED), {}).get("depth", 0)
    assert (dead_letters["status"] == "DEGRADED") is (depth > 0), dead_letters
    return int(depth)


def test_events_wait_in_the_outbox_while_their_queue_is_deleted_and_go_once_it_is_back(
    stack: Stack, infra: Infrastructure, s3: S3Client
) -> None:
    for processor in stack.processors:
        processor.stop()  # its consumer would declare the queue again at once
    vhost = stack.rabbitmq_url.rsplit("/", 1)[1]
    infra.rabbitmqctl("delete_queue", "-p", vhost, RESOURCE_UPLOADED)
    try:
        resource_id = upload_ok(stack, "unroutable")
        # Returned as unroutable, so the event stays in the outbox instead of being lost.
        wait_until(lambda: event_published(stack, resource_id) is False, 10, "a failed publish")
        wait_until(lambda: stack.logged("resource", "outbox_relay_failed") > 0, 10)
        assert event_published(stack, resource_id) is False
        declare(stack.rabbitmq_url, RESOURCE_UPLOADED)  # someone re-creates it
        wait_until(lambda: event_published(stack, resource_id), 15, "published once it exists")
    finally:
        for processor in stack.processors:
            processor.start().wait_healthy()
    assert_exactly_one_permanent_object(stack, s3, resource_id)


def event_published(stack: Stack, resource_id: int) -> bool | None:
    """Whether the resource's `resource.uploaded` left the outbox (None: no such event)."""
    published = run_sql(
        stack,
        "SELECT published_at IS NOT NULL FROM outbox WHERE resource_id = :id AND queue = :queue",
        id=resource_id,
        queue=RESOURCE_UPLOADED,
    )
    return None if published is None else bool(published)


def test_a_delete_while_s3_is_down_cleans_up_once_it_is_back(
    stack: Stack, proxies: Proxies, s3: S3Client
) -> None:
    before = parked(stack)
    resource_id = upload_ok(stack, "deleted while S3 is away")
    row = stack.wait_permanent(resource_id, timeout=15)
    proxies.s3.set_mode(Mode.CUT)
    try:
        deleted = stack.http.delete(f"{stack.resource.url}/resources?id={resource_id}")
        assert deleted.json() == {"ids": [resource_id]}
        assert stack.resource_row(resource_id) is None
        wait_until(
            lambda: stack.logged("resource", "message_retry_scheduled", resource_id=resource_id),
            15,
            "the cleanup failing and scheduled again",
        )
        assert object_exists(s3, row.bucket, row.key)  # S3 away: the bytes are still there
    finally:
        proxies.s3.set_mode(Mode.PASS)
    wait_until(lambda: not object_exists(s3, row.bucket, row.key), 30, "the object removed")
    wait_until(lambda: stack.song_of(resource_id).status_code == 404, 30, "the song removed")
    assert parked(stack) == before  # nothing parked


def test_a_delete_racing_the_processing_leaves_no_song_behind(
    stack: Stack, infra: Infrastructure
) -> None:
    before = parked(stack)
    stack.song.signal(signal.SIGSTOP)  # the worker blocks in POST /songs, mid-message
    try:
        resource_id = upload_ok(stack, "deleted mid-processing")
        held = (0, 1)  # the precondition: the worker holds the message when the delete comes
        wait_until(lambda: queue_depth(infra, stack.rabbitmq_url, RESOURCE_UPLOADED) == held, 15)
        deleted = stack.http.delete(f"{stack.resource.url}/resources?id={resource_id}")
        assert deleted.json() == {"ids": [resource_id]}
    finally:
        stack.song.signal(signal.SIGCONT)  # the worker saves the song after the delete ...
    # ... and its `resource.processed` for a resource that is gone removes it again.
    wait_until(
        lambda: stack.logged(
            "resource", "processed_event_for_unknown_resource", resource_id=resource_id
        ),
        30,
        "the processed event for the deleted resource",
    )
    wait_until(lambda: stack.song_of(resource_id).status_code == 404, 30, "no song left")
    assert stack.resource_row(resource_id) is None
    assert parked(stack) == before  # nothing parked


def test_a_delete_during_the_move_parks_nothing_and_leaves_nothing(
    stack: Stack, proxies: Proxies, s3: S3Client
) -> None:
    """Found by `make chaos` (seed 8): the move read the row, the delete then removed the row and
    the STAGING object, and the move's copy found no source. The proxy holds the copy (a PUT)
    while the test deletes; the move must see that the resource is gone, not park it."""
    before = parked(stack)
    for processor in stack.processors:
        processor.stop()  # the upload's own PUT must pass before the hold
    resource_id = upload_ok(stack, "deleted mid-move")
    row = stack.resource_row(resource_id)
    proxies.s3.hold(b"PUT")
    for processor in stack.processors:
        processor.start()
    wait_until(proxies.s3.holding.is_set, 30, lambda: f"the move's copy held\n{stack.logs()}")
    deleted = stack.http.delete(f"{stack.resource.url}/resources?id={resource_id}")
    assert deleted.json() == {"ids": [resource_id]}
    wait_until(
        lambda: not object_exists(s3, row.staging_bucket, row.staging_key), 30, "STAGING removed"
    )
    proxies.s3.hold(None)
    proxies.s3.set_mode(Mode.CUT)  # the held copy fails over and is sent again: no source now
    proxies.s3.set_mode(Mode.PASS)
    wait_until(
        lambda: stack.logged(
            "resource", "processed_event_for_unknown_resource", resource_id=resource_id
        ),
        30,
        lambda: f"the move giving up on the deleted resource\n{stack.logs()}",
    )
    assert parked(stack) == before
    assert stack.song_of(resource_id).status_code == 404
    copy = f"{stack.permanent_prefix}{row.staging_key.rsplit('/', 1)[-1]}"
    assert not object_exists(s3, PERMANENT_BUCKET, copy)


def test_a_copy_made_after_the_delete_is_removed_when_its_first_cleanup_fails(
    stack: Stack, proxies: Proxies, s3: S3Client
) -> None:
    """The move copied to PERMANENT after the resource was deleted, and S3 refused the copy's
    removal, so the message came back to find no row. The delete's event, kept in the outbox,
    still names the file: the copy goes. The proxy holds the copy while the test deletes, and
    answers every S3 DELETE with a 500 until the copy's removal has failed once."""
    before = parked(stack)
    for processor in stack.processors:
        processor.stop()  # the upload's own PUT must pass before the hold
    resource_id = upload_ok(stack, "copied after its delete")
    row = stack.resource_row(resource_id)
    copy = f"{stack.permanent_prefix}{row.staging_key.rsplit('/', 1)[-1]}"
    proxies.s3.hold(b"PUT")
    proxies.s3.fail(b"DELETE")  # the delete's own removal of STAGING fails too: its source stays
    for processor in stack.processors:
        processor.start()
    wait_until(proxies.s3.holding.is_set, 30, lambda: f"the move's copy held\n{stack.logs()}")
    deleted = stack.http.delete(f"{stack.resource.url}/resources?id={resource_id}")
    assert deleted.json() == {"ids": [resource_id]}
    proxies.s3.release()  # the copy goes through: the row is gone when the move marks it
    wait_until(lambda: object_exists(s3, PERMANENT_BUCKET, copy), 30, "the copy made")
    wait_until(
        lambda: stack.logged(
            "resource", "message_retry_scheduled", resource_id=resource_id, queue=RESOURCE_PROCESSED
        ),
        30,
        lambda: f"the copy's removal failed and its message came back\n{stack.logs()}",
    )
    proxies.s3.fail(None)
    wait_until(lambda: not object_exists(s3, PERMANENT_BUCKET, copy), 60, "the copy removed")
    wait_until(
        lambda: not object_exists(s3, row.staging_bucket, row.staging_key), 30, "STAGING removed"
    )
    assert stack.song_of(resource_id).status_code == 404
    assert parked(stack) == before


def test_an_upload_whose_commit_answer_is_lost_keeps_its_object_and_its_id(
    stack: Stack, proxies: Proxies, s3: S3Client
) -> None:
    """The connection dropped after the row's COMMIT reached PostgreSQL: the row is committed,
    and the service cannot tell. It reads the row back instead of deleting the object."""
    proxies.postgres.lose_reply(to=b"COMMIT", after=b"INSERT INTO outbox")
    proxies.postgres.set_mode(Mode.CUT)  # the pool reconnects, through the armed path
    proxies.postgres.set_mode(Mode.PASS)
    response = stack.upload(make_mp3(1, title="commit answer lost"))
    assert proxies.postgres.lost.is_set()  # the precondition: the COMMIT's answer was lost
    assert response.status_code == 200, response.text
    resource_id = response.json()["id"]
    assert stack.logged("resource", "upload_commit_confirmed_after_error", resource_id=resource_id)
    assert_exactly_one_permanent_object(stack, s3, resource_id)
