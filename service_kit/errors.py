"""The one error format of every service: {"errorMessage": "...", "errorCode": "400"}.

Every exception that reaches FastAPI ends here, so no framework default body, exception class
name or stack trace ever reaches a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service_kit.db import DatabaseTimeout

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """An error the client should see, with its status and message."""

    def __init__(
        self,
        status: int,
        message: str,
        details: dict[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.headers = headers


class NotFound(ApiError):
    def __init__(self, message: str):
        super().__init__(404, message)


class BadRequest(ApiError):
    def __init__(self, message: str, details: dict[str, str] | None = None):
        super().__init__(400, message, details)


class Unavailable(ApiError):
    """A dependency (database, S3, broker) did not answer: retrying later may work."""

    def __init__(self, message: str):
        super().__init__(503, message)


def error_response(
    status: int,
    message: str,
    details: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"errorMessage": message, "errorCode": str(status)}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content=body, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    # FastAPI locations look like ("body", "bucket") or ("query", "id"); the client knows fields.
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or "body"


def validation_details(exc: RequestValidationError) -> dict[str, str]:
    details: dict[str, str] = {}
    for error in exc.errors():
        ctx_error = (error.get("ctx") or {}).get("error")
        field = _field_name(tuple(error["loc"]))
        # Our validators raise ValueError(message); pydantic prefixes "Value error, " to it.
        message = str(ctx_error) if isinstance(ctx_error, ValueError) else error["msg"]
        if error["type"] == "missing" and error["loc"][0] == "query":
            message = f"Query parameter '{field}' is required"
        details.setdefault(field, message)
    return details


def _allowed_methods(request: Request) -> str:
    """Every method served at this path. Starlette's own 405 names only the first route's."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] != Match.NONE:
            methods |= route_methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "Validation error", validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, message, headers=headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(DatabaseTimeout)
    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        # Integrity errors are handled where they mean something; what reaches here is an outage.
        log.warning("database_unavailable", path=request.url.path, error=type(exc).__name__)
        return error_response(503, "Database unavailable, try again later")

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def on_s3_error(request: Request, exc: Exception) -> JSONResponse:
        log.warning("object_storage_unavailable", path=request.url.path, error=type(exc).__name__)
        return error_response(503, "Object storage unavailable, try again later")

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, method=request.method)
        return error_response(500, "Internal server error")
