"""Tags read through a `RemoteFile` are the tags read from the whole file, for far fewer bytes."""

from __future__ import annotations

import pytest

from resource_processor.remote_file import BLOCK_BYTES, RemoteFile
from resource_processor.tags import extract_song_metadata
from tests.mp3_fixtures import mp3_fixtures


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
