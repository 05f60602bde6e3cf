"""200 uploads from 16 concurrent clients with two processors: every one arrives, exactly once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from service_kit.s3 import S3Client, object_exists
from tests.fixture_types import RecordProperty, StackStarter

UPLOADS, CLIENTS = 200, 16


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("load", processors=2)


@pytest.mark.slow
def test_200_uploads_from_16_clients_with_two_processors(
    stack: Stack, s3: S3Client, record_property: RecordProperty
) -> None:
    bodies = [make_mp3(1, title=f"Load {i}") for i in range(UPLOADS)]
    started = time.monotonic()

    def upload_all(share: list[bytes]) -> list[int]:
        with httpx2.Client(timeout=60) as client:
            ids = []
            for body in share:
                response = client.post(
                    f"{stack.resource.url}/resources",
                    content=body,
                    headers={"Content-Type": "audio/mpeg"},
                )
                assert response.status_code == 200, response.text
                ids.append(response.json()["id"])
            return ids

    with ThreadPoolExecutor(CLIENTS) as pool:
        shares = [bodies[i::CLIENTS] for i in range(CLIENTS)]
        ids = [i for share_ids in pool.map(upload_all, shares) for i in share_ids]

    assert len(ids) == UPLOADS and len(set(ids)) == UPLOADS
    wait_until(
        lambda: all(stack.resource_row(i).state == "PERMANENT" for i in ids),
        120,
        lambda: f"all {UPLOADS} PERMANENT\n{stack.logs()}",
    )
    record_property(
        "seconds_from_first_upload_to_all_permanent", round(time.monotonic() - started, 1)
    )
    rows = [stack.resource_row(i) for i in ids]
    assert len({row.key for row in rows}) == UPLOADS
    assert all(object_exists(s3, row.bucket, row.key) for row in rows)
    assert not any(object_exists(s3, row.staging_bucket, row.staging_key) for row in rows)
    songs = [stack.song_of(i) for i in ids]
    assert [song.status_code for song in songs] == [200] * UPLOADS
    assert sorted(song.json()["name"] for song in songs) == sorted(
        f"Load {i}" for i in range(UPLOADS)
    )
    worker_logs = [p.read_text() for p in sorted(stack.log_dir.glob("processor*.log"))]
    assert all('"resource_processed"' in log for log in worker_logs)  # both workers took a share
