"""Slow clients cannot hold the upload slots (issue "No one in, nothing starved", item 4):
two dozen clients that each send a few bytes twice a second, never silent long enough for the
idle limit, hold every slot until the minimum rate ends them with 408; a normal upload then
answers 200 within seconds."""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import urlsplit

import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack
from tests.fixture_types import StackStarter

TRICKLERS = 24
SLOTS = 16  # MAX_CONCURRENT_UPLOADS's default
RATE = {
    "UPLOAD_MIN_BYTES_PER_SECOND": "2000",
    "UPLOAD_RATE_GRACE_SECONDS": "2",
    "UPLOAD_RATE_WINDOW_SECONDS": "2",
}
SONG = make_mp3(1, title="trickled")


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("slow-clients", resource_env=RATE)


async def trickle(url: str) -> bytes:
    """POST an MP3 of the declared size, 10 bytes every 0.5 s (20 B/s), until answered."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"POST /resources HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: audio/mpeg\r\n"
        f"Content-Length: {len(SONG)}\r\n\r\n".encode()
    )
    answer = asyncio.ensure_future(read_response(reader))
    sent = 0
    while not answer.done() and sent < len(SONG):
        writer.write(SONG[sent : sent + 10])
        sent += 10
        await asyncio.wait({answer}, timeout=0.5)
    data = await asyncio.wait_for(answer, 60)
    writer.close()
    return data


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """The whole answer: its head, then as many body bytes as it declares."""
    head = await reader.readuntil(b"\r\n\r\n")
    found = re.search(rb"(?i)content-length: *(\d+)", head)
    return head + await reader.readexactly(int(found.group(1)) if found else 0)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


@pytest.mark.timeout(180)
def test_two_dozen_trickling_clients_free_their_slots_and_a_normal_upload_gets_in(
    stack: Stack,
) -> None:
    async def run() -> tuple[list[bytes], float]:
        trickling = [asyncio.ensure_future(trickle(stack.resource.url)) for _ in range(TRICKLERS)]
        await asyncio.sleep(0.5)  # let them take the slots: this is the attack, not a wait
        started = time.monotonic()
        while True:  # a normal client, honouring Retry-After
            response = await asyncio.to_thread(stack.upload, SONG)
            if response.status_code != 503:
                break
            assert time.monotonic() - started < 30, "the slots were never freed"
            await asyncio.sleep(float(response.headers["Retry-After"]))
        assert response.status_code == 200, response.text
        took = time.monotonic() - started
        return await asyncio.gather(*trickling), took

    answers, took = asyncio.run(run())
    statuses = sorted(status_of(a) for a in answers)
    assert statuses.count(408) >= SLOTS, statuses  # every slot holder was ended
    assert set(statuses) <= {408, 503}, statuses
    slow = next(a for a in answers if status_of(a) == 408)
    assert b"The upload was too slow: under 2000 bytes per second over 2 seconds" in slow
    # The grace and window are 2 s each: the slots free within about 2 s of client time.
    assert took < 10, f"a normal upload waited {took:.1f} s"
    print(f"\n{TRICKLERS} tricklers: a normal upload answered 200 after {took:.1f} s")


def test_a_trickled_upload_stores_nothing(stack: Stack) -> None:
    before = stack.resource_rows()
    answer = asyncio.run(trickle(stack.resource.url))
    assert status_of(answer) == 408
    assert stack.resource_rows() == before
