"""The worker's handler: `resource.uploaded` → bytes → tags → Song Service → `resource.processed`.

Delivery is at least once, so every step may run twice for one resource: the Song Service's 409
counts as done, and `resource.processed` may be published twice (its consumer is idempotent).
The handler returns only after the publish is confirmed; `message_handler` then acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog
from prometheus_client import Counter

from resource_processor.clients import PeerServices
from resource_processor.errors import UnreadableAudio
from resource_processor.tags import extract_song_metadata
from service_kit.messaging import DeadLetter, ResourceEvent

log = structlog.get_logger(__name__)

MESSAGES = Counter(
    "resource_processor_messages_total",
    "resource.uploaded messages by outcome: processed, gone (deleted before processing), "
    "dead_lettered (parked), failed (retried later from a delayed-retry queue)",
    ["outcome"],
)

PublishEvent = Callable[[ResourceEvent], Awaitable[None]]


class ResourceProcessor:
    def __init__(
        self,
        peers: PeerServices,
        publish_processed: PublishEvent,
        download_dir: str | None = None,
    ) -> None:
        self._peers = peers
        self._publish_processed = publish_processed
        self._download_dir = download_dir

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
        async with _temporary_path(self._download_dir) as download:
            if not await self._peers.download_resource(resource_id, download):
                # Deleted since the upload (its `resource.deleted` cleans up): nothing to do.
                log.info("resource_gone_before_processing")
                return "gone"
            metadata = await _read_metadata(download, resource_id)
        created = await self._peers.save_song(metadata)
        await self._publish_processed(ResourceEvent(resource_id))
        log.info("resource_processed", song_created=created, duration=metadata["duration"])
        return "processed"


async def _read_metadata(path: Path, resource_id: int) -> dict:
    try:
        return await asyncio.to_thread(extract_song_metadata, path, resource_id)
    except UnreadableAudio as exc:
        raise DeadLetter(f"unreadable audio: {exc}") from exc


@contextlib.asynccontextmanager
async def _temporary_path(directory: str | None) -> AsyncIterator[Path]:
    """A fresh file path, removed afterwards: downloads go to disk, never to memory."""
    handle, name = await asyncio.to_thread(
        tempfile.mkstemp, prefix="resource-", suffix=".mp3", dir=directory
    )
    os.close(handle)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, name)
