"""The upload path's S3 calls against a real S3 server: one PUT up to the single-PUT size, a
multipart upload past it (its first part what was buffered), the same bytes either way."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from resource_service.object_store import ObjectStore
from service_kit.s3 import S3Client

MIB = 1024 * 1024
BUCKET = "resources-staging"
SINGLE_PUT = 6 * MIB
PART = 5 * MIB


async def in_chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(scope="module")
def store(s3: S3Client) -> Iterator[ObjectStore]:
    with ThreadPoolExecutor(4) as threads:
        yield ObjectStore(s3, SINGLE_PUT, PART, threads)


@pytest.mark.parametrize(
    ("size", "parts"),
    # Past the single-PUT size, the first part is what was buffered (6 MiB + a 64 KiB chunk at
    # most), then parts of 5 MiB, the last one shorter.
    [(SINGLE_PUT, None), (SINGLE_PUT + 1, 1), (SINGLE_PUT + PART + 1, 2), (3 * SINGLE_PUT, 4)],
    ids=["at the single-PUT size", "one byte past it", "a part past it", "three times it"],
)
def test_a_body_is_stored_whole_by_the_calls_its_size_calls_for(
    store: ObjectStore, s3: S3Client, size: int, parts: int | None
) -> None:
    data = os.urandom(size)
    key = f"test/{uuid.uuid4()}.mp3"
    try:

        async def destination() -> tuple[str, str]:
            return BUCKET, key

        assert asyncio.run(store.upload(in_chunks(data), destination)) == size
        stored = s3.get_object(Bucket=BUCKET, Key=key)
        assert stored["Body"].read() == data
        # A multipart object's ETag ends in "-<number of parts>"; a PUT's has no dash.
        etag = stored["ETag"].strip('"')
        assert (etag.rpartition("-")[2] if "-" in etag else None) == (
            None if parts is None else str(parts)
        )
    finally:
        s3.delete_object(Bucket=BUCKET, Key=key)
