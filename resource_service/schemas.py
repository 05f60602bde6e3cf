from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from service_kit.s3 import holds_keys


def _holds_keys(path: str) -> str:
    # A row that cannot hold a key is a failed lookup (the fallback serves), never a 503 later
    # when the key does not fit the resources' columns or S3.
    if not holds_keys(path):
        raise ValueError("keys built from this path would not fit S3's 1024 bytes")
    return path


class StorageLocation(BaseModel):
    """One row of the Storage Service's `GET /storages`, exactly its shape."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    id: int
    storage_type: str = Field(alias="storageType")
    bucket: str = Field(min_length=3, max_length=63)
    path: Annotated[str, Field(pattern=r"^/"), AfterValidator(_holds_keys)]


STORAGE_LIST = TypeAdapter(list[StorageLocation])


class ReprocessQueued(BaseModel):
    """`POST /admin/resources/{id}/reprocess`: its `resource.uploaded` is queued again."""

    id: int
