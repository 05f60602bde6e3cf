"""A read-only, seekable file whose bytes are fetched in ranges only when something reads them.

mutagen reads an MP3's tags and length from a handful of places: the ID3 header and tag at the
start, the first audio frames after it, the last 128 bytes (ID3v1) and the file's size. Handed
this file instead of a downloaded copy, it costs the same few range requests for a 100 MB file as
for a 1 MB one. Why hand-written: neither httpx2 nor mutagen offers a file object over HTTP ranges,
and the one library that does (fsspec's HTTP file) brings aiohttp and its own event loop.

Reads are served from aligned blocks (BLOCK_BYTES unless told); the blocks a read lacks are
fetched in one range request, and kept (a tag is read, then seeked past, then read again).
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable

from resource_processor.errors import PeerUnavailable

BLOCK_BYTES = 64 * 1024

FetchRange = Callable[[int, int], bytes]
"""`fetch(offset, length)`: exactly those bytes of the file (fewer only at its end)."""


class RemoteFile(io.RawIOBase):
    def __init__(
        self,
        size: int,
        fetch: FetchRange,
        blocks: dict[int, bytes] | None = None,
        block_bytes: int = BLOCK_BYTES,
    ):
        """A file of `size` bytes read through `fetch`; `blocks` are ones already fetched
        (block number -> its bytes), such as the first one, which told the size."""
        super().__init__()
        self.size = size
        self.block_bytes = block_bytes
        self._fetch = fetch
        self._blocks = dict(blocks or {})
        self._position = 0
        self.bytes_fetched = sum(len(block) for block in self._blocks.values())
        self.requests = 0  # range requests this file made itself

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            # As a real file does: mutagen reads EINVAL as "smaller than an ID3v1 tag".
            raise OSError(errno.EINVAL, f"seek to {base + offset}, before the start")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        start = self._position
        end = self.size if size is None or size < 0 else min(start + size, self.size)
        if start >= end:
            return b""
        first, last = start // self.block_bytes, (end - 1) // self.block_bytes
        self._fetch_missing(first, last)
        joined = b"".join(self._blocks[number] for number in range(first, last + 1))
        offset = start - first * self.block_bytes
        self._position = end
        return joined[offset : offset + end - start]

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return self.read(-1)

    def _fetch_missing(self, first: int, last: int) -> None:
        """Fetch the run of blocks from the first missing one to the last missing one."""
        missing = [number for number in range(first, last + 1) if number not in self._blocks]
        if not missing:
            return
        block = self.block_bytes
        offset = missing[0] * block
        length = min((missing[-1] + 1) * block, self.size) - offset
        data = self._fetch(offset, length)
        if len(data) != length:  # not OSError: mutagen would take that for a damaged file
            raise PeerUnavailable(f"asked for {length} bytes at {offset}, got {len(data)}")
        self.requests += 1
        self.bytes_fetched += length
        for number in range(missing[0], missing[-1] + 1):
            start = (number - missing[0]) * block
            self._blocks.setdefault(number, data[start : start + block])
