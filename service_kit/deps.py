"""FastAPI dependencies every service uses: a database session and validated ids."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from sqlalchemy.orm import Session

from service_kit.errors import BadRequest
from service_kit.ids import parse_id, parse_id_csv


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def valid_path_id(id: Annotated[str, Path(description="A positive integer")]) -> int:
    return parse_id(id)


def valid_csv_ids(
    id: Annotated[
        str | None, Query(description="Comma-separated positive integers, at most 200 chars")
    ] = None,
) -> list[int]:
    if id is None:
        raise BadRequest("Validation error", {"id": "Query parameter 'id' is required"})
    return parse_id_csv(id)


SessionDep = Annotated[Session, Depends(get_session)]
PathId = Annotated[int, Depends(valid_path_id)]
CsvIds = Annotated[list[int], Depends(valid_csv_ids)]
