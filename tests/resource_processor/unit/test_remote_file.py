"""Tags read through a `RemoteFile` are the tags read from the whole file, for far fewer bytes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx2
import pytest
from structlog.testing import capture_logs

from resource_processor.clients import ByteRange, PeerServices, RetryPolicy
from resource_processor.errors import PeerUnavailable
from resource_processor.remote_file import BLOCK_BYTES, RemoteFile
from resource_processor.tags import extract_song_metadata
from tests.mp3_fixtures import id3v1, mp3_fixtures, with_cover_art

MIB = 1024 * 1024


def remote(data: bytes) -> tuple[RemoteFile, list[tuple[int, int]]]:
    """A RemoteFile over `data` whose first block is given, as the handler's first range gives
    it; and the (offset, length) of every fetch it makes."""
    fetched: list[tuple[int, int]] = []

    def fetch(offset: int, length: int) -> bytes:
        fetched.append((offset, length))
        return data[offset : offset + length]

    return RemoteFile(len(data), fetch, blocks={0: data[:BLOCK_BYTES]}), fetched


@pytest.mark.parametrize("name", list(mp3_fixtures()))
def test_the_same_tags_and_duration_as_from_the_whole_file(name: str) -> None:
    data = mp3_fixtures()[name]
    file, fetched = remote(data)
    assert extract_song_metadata(file, 9) == extract_song_metadata(data, 9)
    assert file.bytes_fetched <= 256 * 1024 or len(data) < 256 * 1024
    assert all(length > 0 for _, length in fetched)


def test_a_tag_larger_than_a_block_is_fetched_in_one_request() -> None:
    data = mp3_fixtures()["cover art over two blocks"]
    file, fetched = remote(data)
    assert extract_song_metadata(file, 1)["name"] == "Covered"
    assert fetched[0] == (BLOCK_BYTES, 2 * BLOCK_BYTES)  # blocks 1 and 2 together


def test_reads_seeks_and_the_end_behave_like_a_real_file() -> None:
    data = bytes(range(256)) * 1000  # 256 000 bytes: four blocks, the last one short
    file, fetched = remote(data)
    assert file.seek(-10, 2) == len(data) - 10
    assert file.read() == data[-10:]
    assert file.read(5) == b""
    file.seek(BLOCK_BYTES - 3)
    assert file.read(6) == data[BLOCK_BYTES - 3 : BLOCK_BYTES + 3]
    assert file.tell() == BLOCK_BYTES + 3
    file.seek(0)
    assert file.read(4) == data[:4]
    assert fetched == [(3 * BLOCK_BYTES, len(data) - 3 * BLOCK_BYTES), (BLOCK_BYTES, BLOCK_BYTES)]
    with pytest.raises(OSError) as error:
        file.seek(-1)
    assert error.value.errno == 22  # EINVAL, which mutagen reads as "a tiny file"


# --- the edges a mutation run found unchecked --------------------------------------------------


def small_blocks(data: bytes, block: int = 10) -> tuple[RemoteFile, list[tuple[int, int]]]:
    fetched: list[tuple[int, int]] = []

    def fetch(offset: int, length: int) -> bytes:
        fetched.append((offset, length))
        return data[offset : offset + length]

    return RemoteFile(len(data), fetch, block_bytes=block), fetched


def test_a_read_ending_one_byte_into_a_block_fetches_that_block_too() -> None:
    data = bytes(range(35))
    file, fetched = small_blocks(data)
    assert file.read(11) == data[:11]  # blocks 0 and 1, the second for its first byte
    assert fetched == [(0, 20)]
    file.seek(29)
    assert file.read(2) == data[29:31]  # one byte of block 2, one of block 3 (the short one)
    assert fetched == [(0, 20), (20, 15)]


def test_two_fetches_in_a_row_each_fetch_only_what_is_missing_and_keep_it() -> None:
    data = bytes(range(50))
    file, fetched = small_blocks(data)
    file.seek(20)
    assert file.read(10) == data[20:30]
    assert file.read(10) == data[30:40]
    assert fetched == [(20, 10), (30, 10)]
    file.seek(15)
    assert file.read(30) == data[15:45]  # blocks 1 and 4 missing: one run from 1 to 4
    assert fetched[-1] == (10, 40)
    file.seek(20)
    assert file.read(20) == data[20:40]
    assert len(fetched) == 3  # all kept


def test_a_peer_that_ignores_range_is_read_at_a_non_zero_offset() -> None:
    """A server (or proxy) answering 200 with the whole body: only the range is kept."""
    body = bytes(range(256)) * 1024  # 256 KiB, sent in 7 000-byte chunks

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7000):
            yield body[i : i + 7000]

    async def whole(_request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=chunks(), headers={"Content-Length": str(len(body))})

    async def read(offset: int, length: int) -> ByteRange | None:
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(whole)) as http:
            peers = PeerServices(http, "http://r", "http://s", RetryPolicy(1))
            return await peers.read_range(7, offset, length)

    for offset, length in [(70_001, 100), (6_999, 2), (len(body) - 5, 10), (0, 7000)]:
        part = asyncio.run(read(offset, length))
        assert part is not None
        assert part.data == body[offset : offset + length], (offset, length)
        assert part.total_size == len(body)


# --- tags too large to read (issue "No one in, nothing starved", item 5) ----------------------


def test_a_tag_over_the_limit_is_never_read_and_the_id3v1_tag_names_the_song() -> None:
    data = with_cover_art(4 * MIB, id3v1=id3v1("Tail title", "Tail artist", "Tail album", "1988"))
    file = remote(data)[0]
    with capture_logs() as logs:
        song = extract_song_metadata(file, 3, max_tag_bytes=MIB)
    assert song == {
        "id": 3,
        "name": "Tail title",
        "artist": "Tail artist",
        "album": "Tail album",
        "duration": extract_song_metadata(data, 3)["duration"],
        "year": "1988",
    }
    assert file.bytes_fetched <= 4 * BLOCK_BYTES  # the head, the audio's start, the end
    assert [e["event"] for e in logs] == ["tags_too_large"]
    assert logs[0]["tag_bytes"] > 4 * MIB


def test_a_tag_over_the_limit_without_id3v1_gives_placeholders() -> None:
    data = with_cover_art(2 * MIB)
    song = extract_song_metadata(remote(data)[0], 3, max_tag_bytes=MIB)
    assert (song["name"], song["artist"], song["year"]) == (
        "Unknown title",
        "Unknown artist",
        "1900",
    )
    assert song["duration"] == "00:03"


def test_a_tag_within_the_limit_is_read_as_before() -> None:
    data = with_cover_art(2 * MIB)
    assert extract_song_metadata(remote(data)[0], 3, max_tag_bytes=4 * MIB)["name"] == "Covered"


def test_it_counts_exactly_the_requests_and_bytes_it_fetched_itself() -> None:
    """What the processor logs per file (`bytes_fetched`, the requests): what a mutation run
    found unchecked (docs/mutation.md)."""
    data = bytes(range(256)) * (3 * BLOCK_BYTES // 256)
    file, fetched = remote(data)
    # The given first block was fetched by the handler: its bytes count, its request does not.
    assert (file.requests, file.bytes_fetched) == (0, BLOCK_BYTES)
    file.seek(2 * BLOCK_BYTES)
    file.read(10)
    file.seek(BLOCK_BYTES + 5)
    file.read(10)
    assert file.requests == len(fetched) == 2
    assert file.bytes_fetched == BLOCK_BYTES + sum(length for _, length in fetched)


def test_a_read_at_the_end_fetches_nothing_and_a_seek_before_the_start_says_where() -> None:
    file, fetched = small_blocks(bytes(25))  # blocks of 10: the last one is short
    file.seek(0, 2)
    assert file.read(10) == b"" and fetched == []  # the short last block is not asked for
    file.seek(7)
    with pytest.raises(OSError, match=r"^\[Errno 22\] seek to -3, before the start$"):
        file.seek(-10, 1)


def test_a_short_answer_names_what_was_asked_and_what_came() -> None:
    file = RemoteFile(25, lambda offset, length: bytes(length - 1), block_bytes=10)
    with pytest.raises(PeerUnavailable, match=r"^asked for 10 bytes at 0, got 9$"):
        file.read(4)
