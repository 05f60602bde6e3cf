"""Asks the Storage Service where files of a type live (`GET /storages`).

This is the plain HTTP client: it raises httpx's errors as they are (so a circuit breaker can
tell a 5xx from a 4xx) and `MalformedStorageAnswer` for an answer of the wrong shape.
`storage_lookup` is what the rest of the service calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError


class StorageLocation(BaseModel):
    """One row of `GET /storages`, exactly its shape."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    id: int
    storage_type: str = Field(alias="storageType")
    bucket: str = Field(min_length=3, max_length=63)
    path: str = Field(pattern=r"^/")


STORAGE_LIST = TypeAdapter(list[StorageLocation])


class StorageUnavailable(Exception):
    """The Storage Service could not tell where files live."""


class MalformedStorageAnswer(StorageUnavailable):
    pass


def find_location(storages: list[StorageLocation], storage_type: str) -> StorageLocation:
    """The first (lowest id) location of the type; the seed rows come first."""
    for storage in storages:
        if storage.storage_type == storage_type:
            return storage
    raise MalformedStorageAnswer(f"no {storage_type} location in the answer")


@dataclass
class StorageClient:
    http: httpx.AsyncClient  # base_url and timeout set by whoever builds it

    async def list_storages(self) -> list[StorageLocation]:
        response = await self.http.get("/storages")
        response.raise_for_status()
        try:
            return STORAGE_LIST.validate_json(response.content)
        except ValidationError as exc:
            raise MalformedStorageAnswer(f"malformed GET /storages answer: {exc}") from exc
