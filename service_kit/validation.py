"""Field checks that give the contract's messages instead of pydantic's defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class ContractModel(BaseModel):
    """A request body whose absent fields arrive as null, so that each field's own validator
    answers with the contract's "... is required" message under the field's JSON name."""

    model_config = ConfigDict(populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _absent_fields_are_null(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        absent = {field.alias or name: None for name, field in cls.model_fields.items()}
        return {**absent, **data}


def required_text(
    value: Any, required: str, invalid: str, valid: Callable[[str], object] = lambda _: True
) -> str:
    """`required` when the field is missing or null, `invalid` when it is not a string or
    `valid(value)` is falsy."""
    if value is None:
        raise ValueError(required)
    if not isinstance(value, str) or not valid(value):
        raise ValueError(invalid)
    return value
