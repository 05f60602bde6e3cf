"""The request body of an upload: checked before anything is stored, then streamed.

Each rule is enforced here, where the bytes pass, and raises the error the client gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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


async def with_idle_timeout(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """A client that stops sending mid-upload must not hold the upload open forever."""
    iterator = aiter(chunks)
    while True:
        try:
            async with asyncio.timeout(seconds):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            log.warning("upload_abandoned", reason="client stopped sending")
            raise ApiError(408, "The upload stalled: no data received in time") from None
        yield chunk


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
