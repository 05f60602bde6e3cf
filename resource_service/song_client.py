"""Deletes song metadata when its resources are deleted (`DELETE /songs?id=...`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog

from service_kit.ids import MAX_CSV_LENGTH

log = structlog.get_logger(__name__)


def csv_batches(ids: list[int], max_length: int = MAX_CSV_LENGTH) -> list[str]:
    """Split ids into `1,2,3` lists that each fit the contract's CSV length limit."""
    batches: list[str] = []
    current = ""
    for resource_id in ids:
        candidate = f"{current},{resource_id}" if current else str(resource_id)
        if len(candidate) > max_length:
            batches.append(current)
            candidate = str(resource_id)
        current = candidate
    if current:
        batches.append(current)
    return batches


@dataclass
class SongClient:
    http: httpx.AsyncClient

    async def delete_songs(self, ids: list[int]) -> None:
        """Best effort: the resources are already gone; a failure is logged with the ids."""
        for batch in csv_batches(ids):
            try:
                response = await self.http.delete("/songs", params={"id": batch})
                response.raise_for_status()
            except httpx.HTTPError as exc:
                log.error("song_metadata_delete_failed", resource_ids=batch, error=repr(exc))
