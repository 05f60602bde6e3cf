"""Uploads that go wrong after they started (docs/contract.md §3, POST /resources), against a real
stack: bodies over the limit once a multipart upload is under way, a client that stops sending, a
client that disconnects. Each leaves no row, no object and no unfinished multipart upload.

The simpler rejections (content type, empty or non-MP3 bytes, 413 by row count) are in
tests/resource_service/e2e/test_resources_api.py.
"""

from __future__ import annotations

import json
import select as io_select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from resource_service.models import Resource
from service_kit.s3 import S3Client
from tests.contract import assert_error
from tests.fixture_types import StackStarter

MIB = 1024 * 1024
# Over one S3 part (5 MiB, also the stack's UPLOAD_SINGLE_PUT_BYTES): a multipart upload has
# started when the limit is hit.
MAX_UPLOAD_BYTES = 6 * MIB
IDLE_SECONDS = 1
MAX_SECONDS = 3
STAGING_BUCKET = "resources-staging"
# The start of an upload that passes every check: MP3 bytes, then more than one part.
PAST_ONE_PART = make_mp3(1) + bytes(5 * MIB + MIB // 2)
TOO_LARGE = f"File is too large: the maximum allowed size is {MAX_UPLOAD_BYTES} bytes"


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack(
        "uploads",
        resource_env={
            "MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES),
            "UPLOAD_IDLE_SECONDS": str(IDLE_SECONDS),
            "UPLOAD_MAX_SECONDS": str(MAX_SECONDS),
            # The least S3 allows, so that a multipart upload is under way past one part.
            "UPLOAD_SINGLE_PUT_BYTES": str(5 * MIB),
        },
    )


@pytest.fixture(scope="module")
def resource_db(stack: Stack) -> Iterator[Engine]:
    engine = create_engine(stack.resource_database_url)
    yield engine
    engine.dispose()


class Leftovers:
    """What an upload may leave behind: rows, STAGING objects, unfinished multipart uploads.

    Every stack has a STAGING folder of its own (`stack.staging_prefix`); still only what is new
    since the fixture was made counts, and a check polls until the service has cleaned up.
    """

    def __init__(self, s3: S3Client, resource_db: Engine, prefix: str) -> None:
        self.s3 = s3
        self.prefix = prefix
        self.resource_db = resource_db
        self.rows, self.objects, self.multipart = self._now()

    def _now(self) -> tuple[int, set[str], set[tuple[str, str]]]:
        with self.resource_db.connect() as conn:
            rows = conn.scalar(select(func.count()).select_from(Resource)) or 0
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=STAGING_BUCKET, Prefix=self.prefix
        )
        objects = {item["Key"] for page in pages for item in page.get("Contents", [])}
        uploads = self.s3.list_multipart_uploads(Bucket=STAGING_BUCKET, Prefix=self.prefix)
        multipart = {(u["Key"], u["UploadId"]) for u in uploads.get("Uploads", [])}
        return rows, objects, multipart

    def new_since_before(self) -> dict[str, Any]:
        rows, objects, multipart = self._now()
        return {
            "rows": rows - self.rows,
            "objects": objects - self.objects,
            "multipart uploads": multipart - self.multipart,
        }

    def assert_none_left(self, timeout: float = 10.0) -> None:
        nothing = {"rows": 0, "objects": set(), "multipart uploads": set()}
        wait_until(
            lambda: self.new_since_before() == nothing, timeout, str(self.new_since_before())
        )


@pytest.fixture
def leftovers(stack: Stack, s3: S3Client, resource_db: Engine) -> Leftovers:
    return Leftovers(s3, resource_db, stack.staging_prefix)


def abandoned_uploads(stack: Stack, reason: str) -> int:
    """How often the Resource Service logged giving up on an upload for `reason`."""
    return stack.logged("resource", "upload_abandoned", reason=reason)


def start_raw_upload(stack: Stack, content_length: int, first_bytes: bytes) -> socket.socket:
    """An upload on a bare socket, so the test decides when (and whether) the body goes on."""
    sock = socket.create_connection(("127.0.0.1", stack.resource.port), timeout=30)
    head = (
        "POST /resources HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{stack.resource.port}\r\n"
        "Content-Type: audio/mpeg\r\n"
        f"Content-Length: {content_length}\r\n"
        "\r\n"
    )
    sock.sendall(head.encode() + first_bytes)
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


class RawResponse:
    """Just enough of a response for `assert_error`."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.content = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status_code = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, value in (line.split(":", 1) for line in header_lines)
        }
        self.text = self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def chunked(*parts: bytes, then: int, chunk_size: int = MIB) -> Iterator[bytes]:
    yield from parts
    for _ in range(then // chunk_size):
        yield bytes(chunk_size)


@pytest.mark.parametrize("declared_length", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_past_one_part_is_413_and_leaves_nothing(
    stack: Stack, leftovers: Leftovers, declared_length: bool
) -> None:
    body = PAST_ONE_PART + bytes(MAX_UPLOAD_BYTES - len(PAST_ONE_PART) + MIB)
    content = (
        body if declared_length else chunked(PAST_ONE_PART, then=len(body) - len(PAST_ONE_PART))
    )
    response = stack.http.post(
        f"{stack.resource.url}/resources", content=content, headers={"Content-Type": "audio/mpeg"}
    )
    assert ("content-length" in response.request.headers) is declared_length
    assert_error(response, 413, TOO_LARGE)
    leftovers.assert_none_left()


def test_a_client_that_stops_sending_mid_upload_gets_408_and_leaves_nothing(
    stack: Stack, leftovers: Leftovers
) -> None:
    # Past one part, so a multipart upload is under way when the client goes quiet.
    sock = start_raw_upload(stack, MAX_UPLOAD_BYTES, PAST_ONE_PART)
    try:
        raw = read_until_closed(sock, timeout=IDLE_SECONDS + 20)
    finally:
        sock.close()
    assert raw, "the server closed the connection without an answer"
    assert_error(RawResponse(raw), 408, "The upload stalled: no data received in time")
    leftovers.assert_none_left()


def test_a_client_that_trickles_past_the_upload_deadline_gets_408_and_leaves_nothing(
    stack: Stack, leftovers: Leftovers
) -> None:
    """A chunk every half second never trips the idle timeout; the total deadline ends it."""
    sock = start_raw_upload(stack, MAX_UPLOAD_BYTES, PAST_ONE_PART)
    started = time.monotonic()
    try:
        while not io_select.select([sock], [], [], 0.5)[0]:  # no answer yet: a little more
            assert time.monotonic() - started < MAX_SECONDS + 10, "no answer after the deadline"
            sock.sendall(bytes(1024))
        raw = read_until_closed(sock, timeout=10)
    finally:
        sock.close()
    assert time.monotonic() - started >= MAX_SECONDS
    assert_error(RawResponse(raw), 408, f"The upload took longer than {MAX_SECONDS} seconds")
    leftovers.assert_none_left()


def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    stack: Stack, leftovers: Leftovers
) -> None:
    reason = "client disconnected"
    disconnects_before = abandoned_uploads(stack, reason)
    sock = start_raw_upload(stack, MAX_UPLOAD_BYTES, PAST_ONE_PART)
    sock.close()
    # The service has noticed (and cleaned up) once it logs the abandoned upload.
    wait_until(
        lambda: abandoned_uploads(stack, reason) > disconnects_before,
        10,
        f"the disconnect was noticed\n{stack.logs()}",
    )
    leftovers.assert_none_left()


def test_an_upload_right_at_the_limit_still_succeeds_after_the_failures(stack: Stack) -> None:
    body = PAST_ONE_PART + bytes(MAX_UPLOAD_BYTES - len(PAST_ONE_PART))
    assert len(body) == MAX_UPLOAD_BYTES
    response = stack.upload(body)
    assert response.status_code == 200, response.text
    row = stack.resource_row(response.json()["id"])
    assert row is not None
    assert row.staging_key.startswith(stack.staging_prefix)
