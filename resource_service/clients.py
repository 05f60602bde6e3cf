"""The Resource Service's outbound HTTP: the Storage Service and the Song Service.

The plain HTTP clients: they raise httpx2's errors as they are (so a circuit breaker can tell a
5xx from a 4xx) and `MalformedStorageAnswer` for an answer of the wrong shape. The breaker and
the fallback are `storage_lookup`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx2
import structlog
from pydantic import ValidationError

from resource_service.errors import MalformedStorageAnswer
from resource_service.schemas import STORAGE_LIST, StorageLocation
from service_kit.ids import MAX_CSV_LENGTH

log = structlog.get_logger(__name__)


@dataclass
class StorageClient:
    http: httpx2.AsyncClient  # base_url and timeout set by whoever builds it

    async def list_storages(self) -> list[StorageLocation]:
        response = await self.http.get("/storages")
        response.raise_for_status()
        try:
            return STORAGE_LIST.validate_json(response.content)
        except ValidationError as exc:
            raise MalformedStorageAnswer(f"malformed GET /storages answer: {exc}") from exc


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
    http: httpx2.AsyncClient

    async def delete_songs(self, ids: list[int]) -> None:
        """Idempotent (unknown ids are ignored); raises when the Song Service cannot answer, so
        that the event asking for it is retried."""
        for batch in csv_batches(ids):
            response = await self.http.delete("/songs", params={"id": batch})
            response.raise_for_status()
