from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.config import JsonDict

from service_kit.ids import is_id
from service_kit.validation import ContractModel, required_text

# Minutes have 2 to 13 digits ("05:07", "125:00"; the column holds 16 characters); seconds 00-59.
_DURATION = re.compile(r"^[0-9]{2,13}:[0-5][0-9]$")
_YEAR = re.compile(r"^(19|20)[0-9]{2}$")
# The same rules as the OpenAPI documents them (JSON Schema); the validators below decide.
# No NUL (PostgreSQL text cannot hold it) and not blank: one character that is not
# str.isspace(), spelled out because \s differs between regex engines.
_NOT_SPACE = r"[^\x00\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_TEXT_SCHEMA: JsonDict = {
    "minLength": 1,
    "maxLength": 100,
    "pattern": f"^[^\\x00]*{_NOT_SPACE}[^\\x00]*$",
}


TEXT_LABELS = {"name": "Song name", "artist": "Artist name", "album": "Album name"}


def _fits_the_text_rule(value: str) -> bool:
    return bool(value.strip()) and len(value) <= 100


def _text(label: str, value: Any) -> str:
    message = f"{label} must be between 1 and 100 characters"
    text = required_text(
        value, f"{label} is required", message, lambda v: v.strip() and len(v) <= 100
    )
    if "\x00" in text:
        raise ValueError(f"{label} must not contain NUL characters")
    return text


class SongCreate(ContractModel):
    # int64: ids are BIGINTs (service_kit.ids.is_id).
    id: int = Field(json_schema_extra={"minimum": 1, "format": "int64"})
    name: str = Field(json_schema_extra=_TEXT_SCHEMA)
    artist: str = Field(json_schema_extra=_TEXT_SCHEMA)
    album: str = Field(json_schema_extra=_TEXT_SCHEMA)
    duration: str = Field(json_schema_extra={"pattern": _DURATION.pattern})
    year: str = Field(json_schema_extra={"pattern": _YEAR.pattern})

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> int:
        if value is None:
            raise ValueError("ID is required")
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 5.0 is the integer 5, 5.5 is not
        if not is_id(value):
            raise ValueError("ID must be a positive integer")
        return int(value)

    @field_validator("name", "artist", "album", mode="before")
    @classmethod
    def _text_field(cls, value: Any, info: ValidationInfo) -> str:
        return _text(TEXT_LABELS[str(info.field_name)], value)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        message = "Duration must be in mm:ss format with leading zeros"
        return required_text(value, "Duration is required", message, _DURATION.fullmatch)

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> str:
        message = "Year must be between 1900 and 2099"
        return required_text(value, "Year is required", message, _YEAR.fullmatch)


class SongPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    artist: str
    album: str
    duration: str
    year: str
