"""The request body of an upload: checked before anything is stored, then streamed.

Each rule is enforced here, where the bytes pass, and raises the error the client gets.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from resource_service.audio import MP3_SNIFF_BYTES, looks_like_mp3
from service_kit.errors import ApiError, BadRequest

log = structlog.get_logger(__name__)

MP3_CONTENT_TYPE = "audio/mpeg"


def check_content_type(content_type: str | None) -> None:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != MP3_CONTENT_TYPE:
        raise BadRequest(
            f"Invalid file format: {content_type or 'none'}. Only MP3 files are allowed"
        )


def check_declared_length(content_length: str | None, max_bytes: int) -> None:
    if content_length and content_length.isdecimal() and int(content_length) > max_bytes:
        raise too_large(max_bytes)


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"File is too large: the maximum allowed size is {max_bytes} bytes")


@dataclass(frozen=True)
class UploadPace:
    """How slowly a client may send: never silent for `idle_seconds`, and once `grace_seconds`
    have passed, at least `min_bytes_per_second` on average over the last `window_seconds`
    (0 turns the rate off). The grace is at least one window."""

    idle_seconds: float
    min_bytes_per_second: int = 0
    grace_seconds: float = 10.0
    window_seconds: float = 10.0


async def with_pace(chunks: AsyncIterator[bytes], pace: UploadPace) -> AsyncIterator[bytes]:
    """The body, ended with a 408 when the client stalls or trickles: sixteen clients sending a
    byte every 25 s would otherwise hold every upload slot until the upload deadline.

    Time counts only while we wait for the client: while a chunk is written to S3 the client
    cannot send, and a slow S3 is not its fault. Each wait has one deadline, the sooner of the
    idle limit and the moment the rate would fall short with nothing more sent, so the check
    costs no timer of its own.
    """
    iterator = aiter(chunks)
    clock = asyncio.get_running_loop().time
    rate = _RateWindow(pace)
    while True:
        began = clock()
        wait = min(pace.idle_seconds, rate.falls_short_at() - rate.waited)
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _too_slow(pace, idle=wait >= pace.idle_seconds) from None
        rate.received(clock() - began, len(chunk))
        yield chunk


class _RateWindow:
    """The chunks of the last window, on a clock that runs only while we wait for the client."""

    def __init__(self, pace: UploadPace) -> None:
        self.waited = 0.0
        self._window = pace.window_seconds
        self._start = max(pace.grace_seconds, pace.window_seconds)
        self._need = pace.min_bytes_per_second * pace.window_seconds
        self._recent: deque[tuple[float, int]] = deque()  # (waited when it came, bytes)

    def received(self, waited_for: float, size: int) -> None:
        self.waited += waited_for
        self._recent.append((self.waited, size))
        while self._recent[0][0] <= self.waited - self._window:
            self._recent.popleft()

    def falls_short_at(self) -> float:
        """When (on the waiting clock) the window would hold too few bytes if none came."""
        if self._need <= 0:
            return math.inf
        first_check = max(self.waited, self._start)
        total = sum(size for at, size in self._recent if at > first_check - self._window)
        if total < self._need:
            return first_check
        for at, size in self._recent:  # oldest first: each leaves the window in turn
            if at + self._window > first_check:
                total -= size
                if total < self._need:
                    return at + self._window
        return math.inf  # unreachable: an empty window holds too few bytes


def _too_slow(pace: UploadPace, idle: bool) -> ApiError:
    if idle:
        log.warning("upload_abandoned", reason="client stopped sending")
        return ApiError(408, "The upload stalled: no data received in time")
    log.warning("upload_abandoned", reason="client sending too slowly")
    return ApiError(
        408,
        f"The upload was too slow: under {pace.min_bytes_per_second} bytes per second "
        f"over {pace.window_seconds:g} seconds",
    )


async def with_deadline(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """A client trickling a chunk now and then must not hold an upload open forever either."""
    deadline = asyncio.get_running_loop().time() + seconds
    async for chunk in chunks:
        if asyncio.get_running_loop().time() > deadline:
            log.warning("upload_abandoned", reason="upload deadline passed")
            raise ApiError(408, f"The upload took longer than {seconds:g} seconds") from None
        yield chunk


async def with_size_limit(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """The body, cut off with a 413 the moment it grows past `max_bytes`."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        yield chunk


async def mp3_body(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body with its first bytes checked: it reads ahead only as far as the check needs.

    Returns an iterator that yields the whole body again, head included.
    """
    iterator = aiter(chunks)
    head = b""
    async for chunk in iterator:
        head += chunk
        if len(head) >= MP3_SNIFF_BYTES:
            break
    if not looks_like_mp3(head):
        raise BadRequest("Invalid file: the content is not MP3 audio")

    async def whole_body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in iterator:
            yield chunk

    return whole_body()
