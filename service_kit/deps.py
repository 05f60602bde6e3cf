"""FastAPI dependencies every service uses: a database session and validated ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from service_kit.ids import MAX_CSV_LENGTH, parse_id, parse_id_csv


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


# The OpenAPI documents what the parsers accept; the parsers alone validate, so every rejection
# carries the contract's message rather than pydantic's.
_POSITIVE_ID = "0*[1-9][0-9]*"
PATH_ID_SCHEMA = {"pattern": f"^{_POSITIVE_ID}$"}
CSV_IDS_SCHEMA = {"pattern": f"^{_POSITIVE_ID}(,{_POSITIVE_ID})*$", "maxLength": MAX_CSV_LENGTH}


def valid_path_id(
    id: Annotated[str, Path(description="A positive integer", json_schema_extra=PATH_ID_SCHEMA)],
) -> int:
    return parse_id(id)


def valid_csv_ids(
    id: Annotated[
        str,
        Query(
            description="Comma-separated positive integers, at most 200 chars",
            json_schema_extra=CSV_IDS_SCHEMA,
        ),
    ],
) -> list[int]:
    return parse_id_csv(id)


SessionDep = Annotated[Session, Depends(get_session)]
PathId = Annotated[int, Depends(valid_path_id)]
CsvIds = Annotated[list[int], Depends(valid_csv_ids)]
