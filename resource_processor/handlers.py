"""The worker's handler: `resource.uploaded` → tags → Song Service → `resource.processed`.

The tags are read where the file lies: mutagen parses a `RemoteFile` whose bytes are fetched
in ranges from the Resource Service as it reads them, so a file costs a few small requests
whatever its size, and nothing is spooled to disk.

Delivery is at least once, so every step may run twice for one resource: the Song Service's 409
counts as done when the stored song is the one this file gives (another is parked), and
`resource.processed` may be published twice (its consumer is idempotent). The handler returns
only after the publish is confirmed; `message_handler` then acks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from prometheus_client import Counter

from resource_processor.clients import ByteRange, PeerServices
from resource_processor.errors import ResourceGone, UnreadableAudio
from resource_processor.remote_file import BLOCK_BYTES, RemoteFile
from resource_processor.tags import extract_song_metadata
from service_kit.messaging import DeadLetter, ResourceEvent

log = structlog.get_logger(__name__)

MESSAGES = Counter(
    "resource_processor_messages_total",
    "resource.uploaded messages by outcome: processed, gone (deleted before processing), "
    "dead_lettered (parked), failed (retried later from a delayed-retry queue)",
    ["outcome"],
)
FETCHED_BYTES = Counter(
    "resource_processor_fetched_bytes_total",
    "Bytes of resources fetched to read their tags (a few ranges per file, whatever its size)",
)

PublishEvent = Callable[[ResourceEvent], Awaitable[None]]


class ResourceProcessor:
    def __init__(
        self,
        peers: PeerServices,
        publish_processed: PublishEvent,
        block_bytes: int = BLOCK_BYTES,
        max_tag_bytes: int | None = None,
    ) -> None:
        self._peers = peers
        self._publish_processed = publish_processed
        self._block_bytes = block_bytes
        self._max_tag_bytes = max_tag_bytes  # a larger ID3v2 tag is skipped, never read

    async def process_uploaded(self, event: ResourceEvent) -> None:
        """Handle one `resource.uploaded`; raises DeadLetter for what no retry can fix."""
        with structlog.contextvars.bound_contextvars(resource_id=event.resource_id):
            try:
                outcome = await self._process(event.resource_id)
            except DeadLetter:
                MESSAGES.labels("dead_lettered").inc()
                raise
            except Exception:
                MESSAGES.labels("failed").inc()
                raise
            MESSAGES.labels(outcome).inc()

    async def _process(self, resource_id: int) -> str:
        try:
            metadata, fetched = await self._read_metadata(resource_id)
        except ResourceGone:
            # Deleted since the upload (its `resource.deleted` cleans up): nothing to do.
            log.info("resource_gone_before_processing")
            return "gone"
        created = await self._peers.save_song(metadata)
        await self._publish_processed(ResourceEvent(resource_id))
        log.info(
            "resource_processed",
            song_created=created,
            duration=metadata["duration"],
            bytes_fetched=fetched,
        )
        return "processed"

    async def _read_metadata(self, resource_id: int) -> tuple[dict[str, Any], int]:
        """The song metadata, and how many bytes of the file it took to read it."""
        block = self._block_bytes
        head = self._found(await self._peers.read_range(resource_id, 0, block))
        loop = asyncio.get_running_loop()

        def fetch(offset: int, length: int) -> bytes:
            # mutagen reads in a worker thread; the request runs on the loop, with its retries.
            reading = self._peers.read_range(resource_id, offset, length)
            return self._found(asyncio.run_coroutine_threadsafe(reading, loop).result()).data

        file = RemoteFile(head.total_size, fetch, blocks={0: head.data}, block_bytes=block)
        try:
            metadata = await asyncio.to_thread(
                extract_song_metadata, file, resource_id, self._max_tag_bytes
            )
        except UnreadableAudio as exc:
            raise DeadLetter(f"unreadable audio: {exc}") from exc
        finally:
            FETCHED_BYTES.inc(file.bytes_fetched)
        return metadata, file.bytes_fetched

    @staticmethod
    def _found(part: ByteRange | None) -> ByteRange:
        if part is None:
            raise ResourceGone()
        return part
