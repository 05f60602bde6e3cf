"""Response bodies that every service's API shares."""

from __future__ import annotations

from pydantic import BaseModel


class CreatedId(BaseModel):
    id: int


class DeletedIds(BaseModel):
    ids: list[int]
