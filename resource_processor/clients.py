"""The worker's outbound HTTP: the Resource Service (bytes) and the Song Service (metadata).

Transport errors, timeouts and 5xx are transient: each call is retried a few times at once, with
exponential backoff, and when those run out the error goes up, so that the message is retried
later through RabbitMQ. Any 4xx the contract does not name is a bug or bad data, which no retry
fixes: the message is parked.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from resource_processor.errors import PeerUnavailable
from service_kit.messaging import DeadLetter
from service_kit.retries import log_retry

log = structlog.get_logger(__name__)
Result = TypeVar("Result")

# `bytes 0-65535/1000000`, or `bytes */0` on a 416
_TOTAL_SIZE = re.compile(r"^bytes (?:\d+-\d+|\*)/(\d+)$")

TRANSIENT_ERRORS = (httpx2.TransportError, PeerUnavailable)  # TransportError covers timeouts


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    min_wait_seconds: float = 0.2
    max_wait_seconds: float = 3.0
    # Injectable so tests can observe the backoff without waiting for it.
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class PeerServices:
    def __init__(
        self,
        http: httpx2.AsyncClient,
        resource_service_url: str,
        song_service_url: str,
        retry: RetryPolicy,
    ) -> None:
        self._http = http
        self._resources_url = f"{resource_service_url.rstrip('/')}/resources"
        self._songs_url = f"{song_service_url.rstrip('/')}/songs"
        self._retry = retry

    async def read_range(self, resource_id: int, offset: int, length: int) -> ByteRange | None:
        """`length` bytes of the resource from `offset` (fewer at its end), and its size;
        None if the resource no longer exists."""
        return await self._with_retries(
            "resource_service", self._range_once, resource_id, offset, length
        )

    async def save_song(self, metadata: dict[str, Any]) -> bool:
        """POST the metadata; False if this very song already existed (a redelivery: already
        done). Raises DeadLetter if another song holds the id."""
        return await self._with_retries("song_service", self._save_once, metadata)

    async def _range_once(self, resource_id: int, offset: int, length: int) -> ByteRange | None:
        url = f"{self._resources_url}/{resource_id}"
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
        async with self._http.stream("GET", url, headers=headers) as response:
            if response.status_code == 404:
                await _raise_unless_deleted(response, resource_id)
                return None
            if response.status_code == 416:  # an offset at or past the end: nothing there
                return ByteRange(b"", _total_size(response))
            await _raise_for_status(response, "resource_service")
            if response.status_code == 206:
                return ByteRange(await response.aread(), _total_size(response))
            # 200: a server (or proxy) that ignores Range; read as far as the range, no further.
            data = await _read_range_of_whole(response, offset, length)
            return ByteRange(data, int(response.headers["Content-Length"]))

    async def _save_once(self, metadata: dict[str, Any]) -> bool:
        response = await self._http.post(self._songs_url, json=metadata)
        if response.status_code == 409:
            await self._check_same_song(metadata)
            return False
        await _raise_for_status(response, "song_service")
        return True

    async def _check_same_song(self, metadata: dict[str, Any]) -> None:
        """A 409 is "already done" only if the stored song is the one we would write: ids are
        sequential and `POST /songs` is open, so anyone could have taken this id first."""
        response = await self._http.get(f"{self._songs_url}/{metadata['id']}")
        if response.status_code == 404:  # deleted since the 409: try the POST again
            raise PeerUnavailable(f"song {metadata['id']} vanished after a 409")
        await _raise_for_status(response, "song_service")
        stored = response.json()
        differs = sorted(k for k, v in metadata.items() if stored.get(k) != v)
        if differs:
            raise DeadLetter(
                f"song id {metadata['id']} is taken by a different song "
                f"(differs in {', '.join(differs)}): not this upload's tags"
            )

    async def _with_retries(
        self, peer: str, call: Callable[..., Awaitable[Result]], *args: Any
    ) -> Result:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=wait_exponential_jitter(
                multiplier=self._retry.min_wait_seconds,
                max=self._retry.max_wait_seconds,
                jitter=self._retry.min_wait_seconds,  # spreads replicas retrying in step
            ),
            retry=retry_if_exception_type(TRANSIENT_ERRORS),
            sleep=self._retry.sleep,
            before_sleep=log_retry("peer_call_retrying", peer=peer),
            reraise=True,
        )
        # Still failing after these few quick tries: the error goes up, and the message comes
        # back later from a delayed-retry queue (service_kit.messaging), for up to the horizon.
        return await retrying(call, *args)


async def _raise_for_status(response: httpx2.Response, peer: str) -> None:
    if response.is_success:
        return
    await response.aread()  # error bodies are small JSON; the text helps whoever reads the DLQ
    detail = f"{peer} answered {response.status_code}: {response.text[:200]}"
    if response.status_code >= 500:
        raise PeerUnavailable(detail)
    raise DeadLetter(detail)


async def _raise_unless_deleted(response: httpx2.Response, resource_id: int) -> None:
    """Returns for the contract's "not found" (the resource was deleted); any other 404 names a
    row whose file is missing from storage (or an answer we do not know): park it, never ack."""
    await response.aread()
    with contextlib.suppress(ValueError, AttributeError):
        if response.json().get("errorMessage") == f"Resource with ID={resource_id} not found":
            return None
    raise DeadLetter(
        f"resource {resource_id}: resource_service answered 404: {response.text[:200]}"
    )


@dataclass(frozen=True)
class ByteRange:
    data: bytes
    total_size: int  # of the whole resource


def _total_size(response: httpx2.Response) -> int:
    match = _TOTAL_SIZE.match(response.headers.get("Content-Range", ""))
    if match is None:
        raise PeerUnavailable(f"no usable Content-Range: {response.headers.get('Content-Range')}")
    return int(match.group(1))


async def _read_range_of_whole(response: httpx2.Response, offset: int, length: int) -> bytes:
    """The range's bytes out of a whole body, keeping nothing before it in memory."""
    kept = bytearray()
    position = 0  # of the next chunk's first byte in the body
    async for chunk in response.aiter_bytes():
        start = max(offset - position, 0)
        kept += chunk[start : start + length - len(kept)]
        position += len(chunk)
        if len(kept) >= length:
            break
    return bytes(kept)
