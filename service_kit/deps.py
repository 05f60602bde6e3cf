"""FastAPI dependencies every service uses: the database, validated ids, the admin token.

The routes reach the composition root's parts through typed dependencies only: the app factory
keeps one `ServiceState` on `app.state`, and `part(request, Protocol)` hands a route the parts
as the protocol it names (a route that needs `.database` asks for `HasDatabase`), checked when
called, so a part missing from a service's `Parts` is a clear error and mypy sees every type.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeVar, runtime_checkable

import structlog
from fastapi import Depends, Header, Path, Query, Request
from pydantic import SecretStr

from service_kit.db import Database
from service_kit.errors import ApiError
from service_kit.ids import MAX_CSV_LENGTH, parse_id, parse_id_csv

log = structlog.get_logger(__name__)
Holder = TypeVar("Holder")


@dataclass
class ServiceState:
    """What the app factory keeps on `app.state.service`: the admin token from the settings and,
    once the lifespan has run the composition root, its parts."""

    admin_token: SecretStr | None
    parts: object = None


def service_state(request: Request) -> ServiceState:
    state = request.app.state.service
    if not isinstance(state, ServiceState):
        raise TypeError(
            "app.state.service is not a ServiceState: build the app with create_service_app"
        )
    return state


def part(request: Request, holder: type[Holder]) -> Holder:
    """The composition root's parts as `holder`, a runtime-checkable protocol (or the class)."""
    parts = service_state(request).parts
    if not isinstance(parts, holder):
        raise TypeError(f"{type(parts).__name__} has no part that {holder.__name__} names")
    return parts


@runtime_checkable
class HasDatabase(Protocol):
    database: Database


def get_database(request: Request) -> Database:
    return part(request, HasDatabase).database


# The OpenAPI documents what the parsers accept; the parsers alone validate, so every rejection
# carries the contract's message rather than pydantic's.
# Up to 18 significant digits: always within a BIGINT (the parser takes up to 2^63-1, which a
# regular expression cannot say exactly).
_POSITIVE_ID = "0*[1-9][0-9]{0,17}"
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


BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_admin_token(
    request: Request,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """`/admin/*` changes behaviour: only `Authorization: Bearer <ADMIN_TOKEN>` may use it, and
    with no ADMIN_TOKEN configured nobody may. The token never reaches a log."""
    expected = service_state(request).admin_token
    where = {"method": request.method, "path": request.url.path}
    if expected is None:
        log.warning("admin_refused", reason="no ADMIN_TOKEN configured", **where)
        raise ApiError(403, "Management is disabled: no ADMIN_TOKEN is configured")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        log.warning("admin_refused", reason="no bearer token", **where)
        raise ApiError(
            401, "Management needs Authorization: Bearer <ADMIN_TOKEN>", headers=BEARER_CHALLENGE
        )
    # Constant time: how much of a guess matched must not show in the answer's timing.
    if not hmac.compare_digest(token.strip().encode(), expected.get_secret_value().encode()):
        log.warning("admin_refused", reason="wrong token", **where)
        raise ApiError(403, "The admin token is not valid")


DatabaseDep = Annotated[Database, Depends(get_database)]
PathId = Annotated[int, Depends(valid_path_id)]
CsvIds = Annotated[list[int], Depends(valid_csv_ids)]
