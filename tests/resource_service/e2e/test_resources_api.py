"""The Resource Service's outside behaviours (docs/contract.md §3), each error message included."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
from sqlalchemy import create_engine, func, select

from devstack.testing.mp3 import make_mp3, not_mp3
from devstack.testing.stack import Stack, wait_until
from resource_service.models import Resource
from service_kit.s3 import S3Client, object_exists
from tests.contract import BAD_PATH_IDS, ID_RULE_CASES, assert_error
from tests.resource_service.e2e.conftest import MAX_UPLOAD_BYTES as MAX_UPLOAD


def object_absent(s3: S3Client, bucket: str, key: str) -> bool:
    return not object_exists(s3, bucket, key)


def song_absent(stack: Stack, resource_id: int) -> bool:
    return stack.song_of(resource_id).status_code == 404


def count_rows(stack: Stack) -> int:
    engine = create_engine(stack.resource_database_url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(Resource))
    engine.dispose()
    return count or 0


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [("text/plain", "text/plain"), ("audio/wav", "audio/wav"), (None, "none")],
)
def test_an_upload_that_is_not_audio_mpeg_is_rejected(
    stack: Stack, content_type: str | None, shown: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    before = count_rows(stack)
    response = stack.http.post(
        f"{stack.resource.url}/resources", content=make_mp3(1), headers=headers
    )
    assert_error(response, 400, f"Invalid file format: {shown}. Only MP3 files are allowed")
    assert count_rows(stack) == before


@pytest.mark.parametrize("body", [b"", not_mp3(), b"ID3", b"hello world, not audio"])
def test_bytes_that_are_not_mp3_are_rejected_and_nothing_is_stored(
    stack: Stack, body: bytes
) -> None:
    before = count_rows(stack)
    assert_error(stack.upload(body), 400, "Invalid file: the content is not MP3 audio")
    assert count_rows(stack) == before


def test_an_upload_over_the_size_limit_is_413_and_nothing_is_stored(stack: Stack) -> None:
    before = count_rows(stack)
    response = stack.upload(make_mp3(1) + b"\0" * MAX_UPLOAD)
    assert_error(
        response, 413, f"File is too large: the maximum allowed size is {MAX_UPLOAD} bytes"
    )
    assert count_rows(stack) == before


def test_an_upload_over_the_limit_without_a_declared_length_is_413(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        yield make_mp3(1)
        for _ in range(5):
            yield b"\0" * (1024 * 1024)

    before = count_rows(stack)
    response = stack.http.post(
        f"{stack.resource.url}/resources", content=chunks(), headers={"Content-Type": "audio/mpeg"}
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_error(response, 413)
    assert count_rows(stack) == before


def test_content_type_parameters_are_accepted(stack: Stack) -> None:
    response = stack.http.post(
        f"{stack.resource.url}/resources",
        content=make_mp3(1),
        headers={"Content-Type": "Audio/MPEG; charset=binary"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("raw", BAD_PATH_IDS)
def test_get_with_a_bad_id(stack: Stack, raw: str) -> None:
    assert_error(
        stack.http.get(f"{stack.resource.url}/resources/{raw}"),
        400,
        f"Invalid value '{raw}' for ID. Must be a positive integer",
    )


@pytest.mark.parametrize("unknown", ["987654321", "9223372036854775807"])
def test_get_unknown_is_404(stack: Stack, unknown: str) -> None:
    assert_error(
        stack.http.get(f"{stack.resource.url}/resources/{unknown}"),
        404,
        f"Resource with ID={unknown} not found",
    )


def test_range_requests_get_206_with_the_bytes_asked_for(stack: Stack) -> None:
    data = make_mp3(2)
    resource_id = stack.upload(data).json()["id"]
    url = f"{stack.resource.url}/resources/{resource_id}"
    for header, expected in [
        ("bytes=0-99", data[:100]),
        ("bytes=100-", data[100:]),
        ("bytes=-50", data[-50:]),
    ]:
        response = stack.http.get(url, headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == expected
        assert response.headers["content-length"] == str(len(expected))
        start = data.find(expected) if header != "bytes=-50" else len(data) - 50
        assert response.headers["content-range"] == (
            f"bytes {start}-{start + len(expected) - 1}/{len(data)}"
        )
    unsatisfiable = stack.http.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert_error(unsatisfiable, 416)
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(data)}"
    ignored = stack.http.get(url, headers={"Range": "bytes=0-1,5-6"})
    assert ignored.status_code == 200 and ignored.content == data


def test_delete_removes_rows_objects_and_song_metadata(stack: Stack, s3: S3Client) -> None:
    moved = stack.upload(make_mp3(1, title="Gone moved")).json()["id"]
    permanent = stack.wait_permanent(moved)
    assert stack.song_of(moved).status_code == 200
    stack.processors[0].stop()  # the second stays in STAGING: its bytes are still there
    try:
        staged = stack.upload(make_mp3(1, title="Gone staged")).json()["id"]
        staging = stack.resource_row(staged)
        # The preconditions: each resource's bytes are where its row says, before the delete.
        assert (permanent.state, staging.state) == ("PERMANENT", "STAGING")
        assert object_exists(s3, permanent.bucket, permanent.key)
        assert object_exists(s3, staging.bucket, staging.key)
        response = stack.http.delete(
            f"{stack.resource.url}/resources?id={staged},987654321,{moved}"
        )
    finally:
        stack.processors[0].start().wait_healthy()
    assert response.status_code == 200
    assert response.json() == {"ids": [staged, moved]}
    for resource_id, row in ((moved, permanent), (staged, staging)):
        assert stack.resource_row(resource_id) is None  # the row goes with the request ...
        assert stack.http.get(f"{stack.resource.url}/resources/{resource_id}").status_code == 404
        # ... its objects and song metadata with its `resource.deleted` event, a moment later.
        for bucket, key in ((row.bucket, row.key), (row.staging_bucket, row.staging_key)):
            wait_until(partial(object_absent, s3, bucket, key), 15, f"{key} removed")
        wait_until(partial(song_absent, stack, resource_id), 15, "song removed")
    again = stack.http.delete(f"{stack.resource.url}/resources?id={moved}")
    assert again.json() == {"ids": []}


@pytest.mark.parametrize(("query", "message"), ID_RULE_CASES)
def test_delete_with_a_bad_id_list(stack: Stack, query: str, message: str) -> None:
    assert_error(stack.http.delete(f"{stack.resource.url}/resources?{query}"), 400, message)


def test_health_shows_each_dependency(stack: Stack) -> None:
    body = stack.http.get(f"{stack.resource.url}/health").json()
    assert body["status"] == "UP"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "UP",
        "s3": "UP",
        "broker": "UP",
        "storageBreaker": "UP",
        "deadLetters": "UP",
    }
    assert body["checks"]["storageBreaker"]["state"] == "CLOSED"
