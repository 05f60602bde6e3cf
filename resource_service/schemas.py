from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class StorageLocation(BaseModel):
    """One row of the Storage Service's `GET /storages`, exactly its shape."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    id: int
    storage_type: str = Field(alias="storageType")
    bucket: str = Field(min_length=3, max_length=63)
    path: str = Field(pattern=r"^/")


STORAGE_LIST = TypeAdapter(list[StorageLocation])


class ReprocessQueued(BaseModel):
    """`POST /admin/resources/{id}/reprocess`: its `resource.uploaded` is queued again."""

    id: int
