"""Upload -> STAGING -> processor -> Song Service -> PERMANENT, with real processes."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.testing.mp3 import make_mp3, truncated_mp3
from devstack.testing.stack import Stack, wait_until
from resource_processor.tags import extract_song_metadata
from service_kit.messaging import (
    RESOURCE_PROCESSED,
    RESOURCE_UPLOADED,
    dead_letter_queue,
)
from service_kit.s3 import S3Client, object_exists
from tests.amqp import message_count, publish_event, queue_depth, take_without_ack
from tests.contract import assert_error
from tests.infra import Infrastructure
from tests.mp3_fixtures import mp3_fixtures


def assert_only_in_permanent(s3: S3Client, row: Any) -> None:  # a stored row
    assert row.bucket == "resources-permanent"
    assert row.key.startswith("permanent/") and row.key.endswith(".mp3")
    assert object_exists(s3, row.bucket, row.key)
    assert not object_exists(s3, row.staging_bucket, row.staging_key)


def test_upload_reaches_permanent_with_its_tags_in_the_song_service(
    stack: Stack, s3: S3Client
) -> None:
    data = make_mp3(185, title="Bohemian", artist="Queen", album="Opera", year="1975")
    response = stack.upload(data)
    assert response.status_code == 200, response.text
    resource_id = response.json()["id"]
    assert response.json() == {"id": resource_id}

    row = stack.wait_permanent(resource_id)
    assert_only_in_permanent(s3, row)
    assert row.staging_key.startswith("staging/")
    assert stack.song_of(resource_id).json() == {
        "id": resource_id,
        "name": "Bohemian",
        "artist": "Queen",
        "album": "Opera",
        "duration": "03:05",
        "year": "1975",
    }
    downloaded = stack.http.get(f"{stack.resource.url}/resources/{resource_id}")
    assert downloaded.status_code == 200
    assert downloaded.headers["content-type"] == "audio/mpeg"
    assert downloaded.headers["content-length"] == str(len(data))
    assert downloaded.content == data


def test_an_mp3_without_tags_gets_placeholder_metadata(stack: Stack, s3: S3Client) -> None:
    resource_id = stack.upload(make_mp3(3)).json()["id"]
    assert_only_in_permanent(s3, stack.wait_permanent(resource_id))
    assert stack.song_of(resource_id).json() == {
        "id": resource_id,
        "name": "Unknown title",
        "artist": "Unknown artist",
        "album": "Unknown album",
        "duration": "00:03",
        "year": "1900",
    }


def test_a_truncated_mp3_is_processed_from_the_frames_it_has(stack: Stack, s3: S3Client) -> None:
    resource_id = stack.upload(truncated_mp3()).json()["id"]
    assert_only_in_permanent(s3, stack.wait_permanent(resource_id))
    assert stack.song_of(resource_id).status_code == 200


def bytes_fetched(stack: Stack, resource_id: int) -> list[int]:
    """What each `resource_processed` log line of the resource says it fetched."""
    records = stack.log_records("processor*.log", "resource_processed")
    return [r["bytes_fetched"] for r in records if r["resource_id"] == resource_id]


def test_every_fixture_gets_the_tags_read_from_the_whole_file_for_a_few_ranges(
    stack: Stack,
) -> None:
    ids = {}
    for name, data in mp3_fixtures().items():
        response = stack.upload(data)
        assert response.status_code == 200, (name, response.text)
        ids[name] = response.json()["id"]
    for name, resource_id in ids.items():
        data = mp3_fixtures()[name]
        stack.wait_permanent(resource_id, timeout=30)
        assert stack.song_of(resource_id).json() == extract_song_metadata(data, resource_id), name
        fetched = bytes_fetched(stack, resource_id)
        assert fetched and max(fetched) <= min(len(data), 256 * 1024), (name, fetched)


def handled_and_acked(stack: Stack, infra: Infrastructure, event: str, resource_id: int) -> None:
    """Wait until the Resource Service's handler has acted on the message (its log says so) and
    the broker holds nothing of the queue any more: ready or unacked."""
    wait_until(
        lambda: stack.logged("resource", event, resource_id=resource_id) == 1,
        10,
        lambda: f"{event} for {resource_id}\n{stack.logs()}",
    )
    wait_until(lambda: queue_depth(infra, stack.rabbitmq_url, RESOURCE_PROCESSED) == (0, 0), 10)


def test_a_duplicate_processed_event_changes_nothing(
    stack: Stack, s3: S3Client, infra: Infrastructure
) -> None:
    resource_id = stack.upload(make_mp3(2, title="Twice")).json()["id"]
    before = stack.wait_permanent(resource_id)
    publish_event(stack.rabbitmq_url, RESOURCE_PROCESSED, resource_id)
    handled_and_acked(stack, infra, "resource_already_permanent", resource_id)
    after = stack.resource_row(resource_id)
    assert (after.state, after.bucket, after.key, after.updated_at) == (
        before.state,
        before.bucket,
        before.key,
        before.updated_at,
    )
    assert_only_in_permanent(s3, after)
    assert message_count(stack.rabbitmq_url, dead_letter_queue(RESOURCE_PROCESSED)) == 0


def test_a_processed_event_for_an_unknown_resource_is_acked(
    stack: Stack, infra: Infrastructure
) -> None:
    publish_event(stack.rabbitmq_url, RESOURCE_PROCESSED, 987_654_321)
    handled_and_acked(stack, infra, "processed_event_for_unknown_resource", 987_654_321)
    assert message_count(stack.rabbitmq_url, dead_letter_queue(RESOURCE_PROCESSED)) == 0


def test_a_processor_that_died_after_saving_the_song_is_repaired_by_redelivery(
    stack: Stack, s3: S3Client
) -> None:
    """The crash leaves a song row and an unacked message; redelivery must still finish."""
    processor = stack.processors[0]
    processor.stop()
    try:
        data = make_mp3(4, title="Crash", artist="Test", album="Faults", year="2020")
        resource_id = stack.upload(data).json()["id"]
        # Act as the processor up to its crash: take the message, save the song, die unacked.
        assert take_without_ack(stack.rabbitmq_url, RESOURCE_UPLOADED) == (
            f'{{"resourceId": {resource_id}}}'.encode()
        )
        saved = stack.http.post(
            f"{stack.song.url}/songs",
            json={
                "id": resource_id,
                "name": "Crash",
                "artist": "Test",
                "album": "Faults",
                "duration": "00:04",
                "year": "2020",
            },
        )
        assert saved.status_code == 200
        assert stack.resource_row(resource_id).state == "STAGING"
    finally:
        processor.start().wait_healthy()
    row = stack.wait_permanent(resource_id, timeout=15)
    assert_only_in_permanent(s3, row)
    assert stack.song_of(resource_id).json()["name"] == "Crash"
    assert message_count(stack.rabbitmq_url, dead_letter_queue(RESOURCE_UPLOADED)) == 0


@pytest.mark.parametrize("burst", [5])
def test_a_burst_of_uploads_all_reach_permanent(stack: Stack, s3: S3Client, burst: int) -> None:
    ids = [stack.upload(make_mp3(1, title=f"Burst {i}")).json()["id"] for i in range(burst)]
    assert len(set(ids)) == burst
    for resource_id in ids:
        assert_only_in_permanent(s3, stack.wait_permanent(resource_id, 15))


def test_a_file_s3_lost_is_named_and_its_message_parked_never_done_with(
    stack: Stack, s3: S3Client
) -> None:
    """An S3 server that forgets (LocalStack restarted) leaves rows whose files are gone. A
    GET says so, not "not found"; the processor parks the message with that reason instead of
    acking it as a deleted resource, and the row stays STAGING for reconcile to list."""
    for processor in stack.processors:
        processor.stop()
    resource_id = stack.upload(make_mp3(1)).json()["id"]
    row = stack.resource_row(resource_id)
    s3.delete_object(Bucket=row.bucket, Key=row.key)  # the S3 server forgot it

    got = stack.http.get(f"{stack.resource.url}/resources/{resource_id}")
    assert_error(got, 404, f"The file of resource ID={resource_id} is missing from storage")
    dlq = dead_letter_queue(RESOURCE_UPLOADED)
    before = message_count(stack.rabbitmq_url, dlq)
    for processor in stack.processors:
        processor.start()
    wait_until(lambda: message_count(stack.rabbitmq_url, dlq) == before + 1, 30, "parked")
    [parked] = [
        r
        for r in stack.log_records("processor*.log", "message_parked")
        if r.get("resource_id") == resource_id
    ]
    assert "missing from storage" in parked["reason"]
    assert stack.resource_row(resource_id).state == "STAGING"
