"""`make reconcile` finds what the rows do not account for, and `--fix` repairs what is safe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import create_engine

from devstack.mp3 import make_mp3
from devstack.reconcile import Stores, find, fix
from devstack.stack import wait_until
from service_kit.messaging import RESOURCE_UPLOADED, dead_letter_queue
from service_kit.s3 import object_exists
from tests.amqp import message_count, publish_body

SONG = {"name": "Nobody's", "artist": "A", "album": "B", "duration": "01:00", "year": "2001"}
NOW = timedelta(0)


@pytest.fixture(scope="module")
def stack(start_module_stack):
    return start_module_stack("reconcile")


def test_reconcile_reports_orphans_stuck_and_parked_and_fixes_what_is_safe(stack, s3):
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

    stores = Stores(
        create_engine(stack.resource_database_url),
        create_engine(stack.song.env["DATABASE_URL"]),
        create_engine(stack.storage.env["DATABASE_URL"]),
        s3,
        url,
        prefix=stack.staging_prefix,
    )
    findings = find(stores, grace=NOW, stuck_after=NOW)
    assert findings.orphan_objects == [{"bucket": "resources-staging", "key": orphan_key}]
    assert findings.orphan_songs == [999_999]
    assert findings.missing_objects == [
        {"resourceId": lost, "bucket": lost_row.bucket, "key": lost_row.key}
    ]
    assert findings.stuck_resources == [stuck]  # the lost one is listed as lost, not stuck
    assert findings.parked[dead_letter_queue(RESOURCE_UPLOADED)] == 1

    fix(stores, findings)
    assert not object_exists(s3, "resources-staging", orphan_key)
    assert stack.song_of(999_999).status_code == 404
    stack.processors[0].start().wait_healthy()
    stack.wait_permanent(stuck, timeout=30)  # its event published again, and processed
    again = find(stores, grace=NOW, stuck_after=NOW)
    assert (again.orphan_objects, again.orphan_songs, again.stuck_resources) == ([], [], [])
    assert [m["resourceId"] for m in again.missing_objects] == [lost]  # a person's call
    for engine in (stores.resource_db, stores.song_db, stores.storage_db):
        engine.dispose()
