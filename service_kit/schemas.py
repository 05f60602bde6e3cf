"""Response bodies that every service's API shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CreatedId(BaseModel):
    id: int


class DeletedIds(BaseModel):
    ids: list[int]


class ErrorPublic(BaseModel):
    """The one error format (docs/contract.md §3); documented on every route, see
    `web.ERROR_RESPONSES`."""

    model_config = ConfigDict(extra="forbid")

    errorMessage: str
    errorCode: str = Field(pattern=r"^[45][0-9]{2}$", description="The HTTP status, as a string")
    details: dict[str, str] | None = Field(default=None, description="Field -> message")
