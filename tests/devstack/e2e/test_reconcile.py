"""`make reconcile` finds what the rows do not account for, and `--fix` repairs what is safe."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from devstack.ops.reconcile import Stores, find, fix, stack_stores
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from service_kit.messaging import RESOURCE_UPLOADED, dead_letter_queue
from service_kit.s3 import S3Client, object_exists
from tests.amqp import message_count, publish_body
from tests.fixture_types import StackStarter

SONG = {"name": "Nobody's", "artist": "A", "album": "B", "duration": "01:00", "year": "2001"}
NOW = timedelta(0)


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("reconcile")


def close(stores: Stores) -> None:
    for engine in (stores.resource_db, stores.song_db, stores.storage_db):
        engine.dispose()


def test_reconcile_reports_orphans_stuck_and_parked_and_fixes_what_is_safe(
    stack: Stack, s3: S3Client
) -> None:
    url = stack.rabbitmq_url
    publish_body(url, RESOURCE_UPLOADED, b"poison")  # parked at once by the worker
    wait_until(lambda: message_count(url, dead_letter_queue(RESOURCE_UPLOADED)) == 1, 15)
    orphan_key = f"{stack.staging_prefix}left-behind.mp3"
    s3.put_object(Bucket="resources-staging", Key=orphan_key, Body=b"ID3 orphan")
    assert stack.http.post(f"{stack.song.url}/songs", json={"id": 999_999, **SONG}).is_success
    stack.processors[0].stop()
    stuck = stack.upload(make_mp3(1, title="Stuck")).json()["id"]
    lost = stack.upload(make_mp3(1, title="Lost")).json()["id"]
    lost_row = stack.resource_row(lost)
    s3.delete_object(Bucket=lost_row.bucket, Key=lost_row.key)  # an S3 server that forgot

    stores = stack_stores(stack, s3, stack.staging_prefix)
    findings = find(stores, grace=NOW, stuck_after=NOW)
    assert findings.orphan_objects == [{"bucket": "resources-staging", "key": orphan_key}]
    assert findings.orphan_songs == [999_999]
    assert findings.missing_objects == [
        {"resourceId": lost, "bucket": lost_row.bucket, "key": lost_row.key}
    ]
    assert findings.stuck_resources == [stuck]  # the lost one is listed as lost, not stuck
    assert findings.parked[dead_letter_queue(RESOURCE_UPLOADED)] == 1

    fix(stores, findings, grace=NOW)
    assert not object_exists(s3, "resources-staging", orphan_key)
    assert stack.song_of(999_999).status_code == 404
    stack.processors[0].start().wait_healthy()
    stack.wait_permanent(stuck, timeout=30)  # its event published again, and processed
    again = find(stores, grace=NOW, stuck_after=NOW)
    assert (again.orphan_objects, again.orphan_songs, again.stuck_resources) == ([], [], [])
    assert [m["resourceId"] for m in again.missing_objects] == [lost]  # a person's call
    close(stores)


def test_a_song_id_claimed_in_advance_is_parked_and_listed_not_taken_as_done(
    stack: Stack, s3: S3Client
) -> None:
    """Ids are sequential and `POST /songs` is open: junk posted for the next id must not
    replace that upload's tags (issue "No one in, nothing starved", item 3)."""
    url = stack.rabbitmq_url
    parked_before = message_count(url, dead_letter_queue(RESOURCE_UPLOADED))
    last = stack.upload(make_mp3(1, title="Before")).json()["id"]
    stack.wait_permanent(last, timeout=30)
    claimed = last + 1
    junk = {"id": claimed, **SONG, "name": "Junk"}
    assert stack.http.post(f"{stack.song.url}/songs", json=junk).is_success
    assert stack.upload(make_mp3(1, title="Mine")).json()["id"] == claimed
    wait_until(
        lambda: message_count(url, dead_letter_queue(RESOURCE_UPLOADED)) == parked_before + 1, 30
    )
    assert stack.resource_row(claimed).state == "STAGING"  # not moved as if processed

    stores = stack_stores(stack, s3, stack.staging_prefix)
    listed = find(stores, grace=NOW, stuck_after=NOW).parked_messages
    close(stores)
    taken = [m for m in listed if m["resourceId"] == claimed]
    assert len(taken) == 1
    assert taken[0]["queue"] == dead_letter_queue(RESOURCE_UPLOADED)
    assert taken[0]["reason"].startswith(f"song id {claimed} is taken by a different song")
    # Listing took nothing: every parked message is still there.
    assert message_count(url, dead_letter_queue(RESOURCE_UPLOADED)) == parked_before + 1


def test_reconcile_fix_on_a_live_platform_removes_nothing_live(stack: Stack, s3: S3Client) -> None:
    """`FIX=1` with no grace at all, over and over, while clients upload and delete: objects of
    uploads in flight, copies of moves in flight and songs just saved are all live, and each
    deletion re-checks just before it acts. Every upload not deleted ends PERMANENT whole."""
    stores = stack_stores(stack, s3)  # every path of the stack's storage rows
    stop = threading.Event()
    uploaded: list[int] = []
    deleted: list[int] = []

    def clients() -> None:
        while not stop.is_set():
            answer = stack.upload(make_mp3(1, title=f"live {len(uploaded)}"))
            assert answer.status_code == 200, answer.text
            uploaded.append(answer.json()["id"])
            if len(uploaded) % 3 == 0:
                gone = uploaded[-2]
                stack.http.delete(f"{stack.resource.url}/resources?id={gone}").raise_for_status()
                deleted.append(gone)

    def reconciling() -> int:
        rounds = 0
        while not stop.is_set():
            fix(stores, find(stores, grace=NOW, stuck_after=NOW), grace=NOW)
            rounds += 1
        return rounds

    with ThreadPoolExecutor(3) as pool:
        uploading = [pool.submit(clients), pool.submit(clients)]
        reconciled = pool.submit(reconciling)
        time.sleep(15)  # the length of the run, not a wait for a condition
        stop.set()
        assert reconciled.result() >= 3  # reconcile ran through the uploads, not once
        for client in uploading:
            client.result()
    live = sorted(set(uploaded) - set(deleted))
    assert len(live) >= 10
    for resource_id in live:
        row = stack.wait_permanent(resource_id, timeout=60)
        assert object_exists(s3, row.bucket, row.key), resource_id
        assert stack.song_of(resource_id).status_code == 200, resource_id
    close(stores)
