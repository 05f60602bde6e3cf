"""The upload's pace (issue "No one in, nothing starved", item 4): a client that stalls or
trickles gets 408; time spent writing what it sent does not count against it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from resource_service.upload_body import UploadPace, _RateWindow, with_pace
from service_kit.errors import ApiError

# A small scale, so that the clients below send in tenths of a second.
PACE = UploadPace(
    idle_seconds=1.0, min_bytes_per_second=1000, grace_seconds=0.2, window_seconds=0.2
)


async def client(chunks: int, size: int, every: float) -> AsyncIterator[bytes]:
    """A client that sends `chunks` chunks of `size` bytes, one every `every` seconds."""
    for _ in range(chunks):
        await asyncio.sleep(every)
        yield b"x" * size


async def read(body: AsyncIterator[bytes], pause_after_each: float = 0.0) -> int:
    """Read the body as the upload does; `pause_after_each` stands for a slow S3 write."""
    size = 0
    async for chunk in body:
        size += len(chunk)
        await asyncio.sleep(pause_after_each)
    return size


def test_a_client_above_the_rate_is_read_whole() -> None:
    body = with_pace(client(20, 100, 0.02), PACE)  # 5000 B/s
    assert asyncio.run(read(body)) == 2000


def test_a_trickling_client_gets_408_soon_after_the_grace() -> None:
    async def run() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ApiError) as raised:
            await read(with_pace(client(1000, 1, 0.01), PACE))  # 100 B/s, never silent
        assert raised.value.status == 408
        assert raised.value.message == (
            "The upload was too slow: under 1000 bytes per second over 0.2 seconds"
        )
        return loop.time() - started

    assert asyncio.run(run()) < 0.5  # the grace is 0.2 s; the idle limit (1 s) never came


def test_time_spent_writing_does_not_count_against_the_client() -> None:
    """Each chunk is written for 0.3 s (an S3 that is slow): on the wall clock that is far under
    the rate, but the client sends each at once."""
    body = with_pace(client(4, 100, 0.0), PACE)
    assert asyncio.run(read(body, pause_after_each=0.3)) == 400


def test_a_silent_client_gets_the_stall_answer() -> None:
    pace = UploadPace(idle_seconds=0.1)
    with pytest.raises(ApiError) as raised:
        asyncio.run(read(with_pace(client(1, 1, 0.5), pace)))
    assert raised.value.status == 408
    assert raised.value.message == "The upload stalled: no data received in time"


def test_no_minimum_lets_a_trickle_through() -> None:
    pace = UploadPace(idle_seconds=1.0, min_bytes_per_second=0)
    assert asyncio.run(read(with_pace(client(30, 1, 0.01), pace))) == 30


def test_the_window_falls_short_when_its_oldest_bytes_leave_it() -> None:
    window = _RateWindow(
        UploadPace(30, min_bytes_per_second=10, grace_seconds=10, window_seconds=10)
    )
    window.received(1.0, 60)  # at 1 s
    window.received(4.0, 60)  # at 5 s
    # 120 bytes in the window at the first check (10 s); the first 60 leave it at 11 s.
    assert window.falls_short_at() == 11.0
    window.received(7.0, 100)  # at 12 s: 160 bytes in (2, 12]
    # The 60 of 5 s leave at 15 s, and 100 stay: exactly enough, until they leave at 22 s.
    assert window.falls_short_at() == 22.0
