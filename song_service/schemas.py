from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from service_kit.ids import MAX_STORED_ID
from service_kit.validation import ContractModel, required_text

# Minutes have two digits or more ("05:07", "125:00"); seconds are 00-59.
_DURATION = re.compile(r"^[0-9]{2,}:[0-5][0-9]$")
_YEAR = re.compile(r"^(19|20)[0-9]{2}$")


def _text(label: str, value: Any) -> str:
    message = f"{label} must be between 1 and 100 characters"
    value = required_text(value, f"{label} is required", message)
    if not value.strip() or len(value) > 100:
        raise ValueError(message)
    return value


class SongCreate(ContractModel):
    id: int
    name: str
    artist: str
    album: str
    duration: str
    year: str

    @field_validator("id", mode="before")
    @classmethod
    def _id(cls, value: Any) -> int:
        if value is None:
            raise ValueError("ID is required")
        # bool is an int in Python; JSON true is not an id.
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_STORED_ID:
            raise ValueError("ID must be a positive integer")
        return value

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return _text("Song name", value)

    @field_validator("artist", mode="before")
    @classmethod
    def _artist(cls, value: Any) -> str:
        return _text("Artist name", value)

    @field_validator("album", mode="before")
    @classmethod
    def _album(cls, value: Any) -> str:
        return _text("Album name", value)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> str:
        message = "Duration must be in mm:ss format with leading zeros"
        value = required_text(value, "Duration is required", message)
        if not _DURATION.match(value):
            raise ValueError(message)
        return value

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, value: Any) -> str:
        message = "Year must be between 1900 and 2099"
        value = required_text(value, "Year is required", message)
        if not _YEAR.match(value):
            raise ValueError(message)
        return value


class SongPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    artist: str
    album: str
    duration: str
    year: str
