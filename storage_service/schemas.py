from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from service_kit.s3 import holds_keys
from service_kit.validation import ContractModel, required_text

# S3 bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens, starting and ending
# with a letter or digit, no "..", not an IP address, none of the reserved prefixes/suffixes.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# "Formatted as an IP address": S3 (LocalStack included) rejects any dotted all-digit name.
_IP_LIKE = r"[0-9]+([.][0-9]+)+"
_RESERVED = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3")
BUCKET_MESSAGE = (
    "Bucket must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots or hyphens, "
    "starting and ending with a letter or digit"
)
PATH_MESSAGE = (
    "Path must start with '/' and hold printable characters, at most 983 bytes between its "
    "slashes: each file's key (path and a 40-character file name) must fit S3's 1024 bytes"
)

# The same rules as the OpenAPI documents them (JSON Schema); the validators below decide.
BUCKET_SCHEMA: JsonDict = {
    "minLength": 3,
    "maxLength": 63,
    "pattern": (
        "^(?!xn--|sthree-|amzn-s3-demo-)(?!.*[.][.])"
        f"(?!{_IP_LIKE}$)"
        "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
        "(?<!-s3alias)(?<!--ol-s3)(?<![.]mrap)(?<!--x-s3)$"
    ),
}
# Exact for ASCII paths with one slash at each end; the validator counts bytes, and
# str.isprintable() also rejects some non-ASCII characters JSON Schema can't name.
PATH_SCHEMA: JsonDict = {"maxLength": 985, "pattern": "^/[^\\x00-\\x1f\\x7f]*$"}


def is_valid_bucket(name: str) -> bool:
    if not _BUCKET.fullmatch(name) or ".." in name:
        return False
    if name.startswith(_RESERVED) or name.endswith(_RESERVED_SUFFIXES):
        return False
    return re.fullmatch(_IP_LIKE, name) is None


def _is_valid_path(path: str) -> bool:
    return path.startswith("/") and path.isprintable() and holds_keys(path)


class StorageCreate(ContractModel):
    storage_type: Literal["STAGING", "PERMANENT"] = Field(alias="storageType")
    bucket: str = Field(json_schema_extra=BUCKET_SCHEMA)
    path: str = Field(json_schema_extra=PATH_SCHEMA)

    @field_validator("storage_type", mode="before")
    @classmethod
    def _storage_type(cls, value: Any) -> str:
        message = "Storage type must be STAGING or PERMANENT"
        return required_text(
            value, "Storage type is required", message, lambda v: v in ("STAGING", "PERMANENT")
        )

    @field_validator("bucket", mode="before")
    @classmethod
    def _bucket(cls, value: Any) -> str:
        return required_text(value, "Bucket is required", BUCKET_MESSAGE, is_valid_bucket)

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, value: Any) -> str:
        return required_text(value, "Path is required", PATH_MESSAGE, _is_valid_path)


class StoragePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    storage_type: str = Field(serialization_alias="storageType")
    bucket: str
    path: str
