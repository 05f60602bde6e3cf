"""What the benchmarks upload: valid, tagged MP3 bytes held in memory, and the HTTP calls that
send and fetch them (the same bytes go to S3 directly for the baselines)."""

from __future__ import annotations

import time
from collections.abc import Callable

from devstack.testing.mp3 import iter_mp3_chunks
from devstack.testing.stack import Stack

MB = 1_000_000
READ_CHUNK = 1024 * 1024


def mp3_bytes(size: int, title: str = "Bench") -> bytes:
    """A valid MP3 of (just under) `size` bytes with an ID3 tag the processor can read."""
    chunks = iter_mp3_chunks(
        size, READ_CHUNK, title=title, artist="Bench", album="Bench", year=2024
    )
    return b"".join(chunks)


def upload(stack: Stack, data: bytes) -> int:
    """POST /resources with `data` as the body; the new resource's id."""
    response = stack.upload(data)
    response.raise_for_status()
    return int(response.json()["id"])


def download(stack: Stack, resource_id: int) -> int:
    """GET /resources/{id}, reading the body as it arrives and dropping it; its length."""
    received = 0
    with stack.http.stream("GET", f"{stack.resource.url}/resources/{resource_id}") as response:
        response.raise_for_status()
        for chunk in response.iter_raw(READ_CHUNK):
            received += len(chunk)
    return received


def delete(stack: Stack, ids: list[int]) -> None:
    """DELETE /resources in batches: the CSV parameter is capped at 200 characters."""
    batch: list[str] = []
    for resource_id in [*map(str, ids), None]:
        if batch and (resource_id is None or len(",".join([*batch, resource_id])) > 200):
            response = stack.http.delete(
                f"{stack.resource.url}/resources", params={"id": ",".join(batch)}
            )
            response.raise_for_status()
            batch = []
        if resource_id is not None:
            batch.append(resource_id)


def timed(call: Callable[[], object]) -> tuple[float, object]:
    """(seconds it took, what it returned)"""
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result
