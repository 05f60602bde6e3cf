from __future__ import annotations

import re
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from resource_service import handlers, repository
from resource_service.deps import DependenciesDep
from resource_service.errors import (
    CommitOutcomeUnknown,
    ObjectLost,
    RangeNotSatisfiable,
    StorageUnavailable,
    UploadExpired,
)
from resource_service.schemas import ReprocessQueued
from resource_service.upload_body import (
    check_content_type,
    check_declared_length,
    mp3_body,
    with_deadline,
    with_pace,
    with_size_limit,
)
from service_kit.deps import CsvIds, PathId, require_admin_token
from service_kit.errors import ApiError, NotFound, Unavailable, error_response
from service_kit.resilience.bulkhead import BulkheadFull
from service_kit.schemas import CreatedId, DeletedIds

log = structlog.get_logger(__name__)
router = APIRouter(prefix="/resources", tags=["resources"])

# One range (`bytes=0-99`, `bytes=100-`, `bytes=-100`); anything else is ignored (RFC 9110).
_SINGLE_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"audio/mpeg": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("", response_model=CreatedId, openapi_extra=UPLOAD_BODY)
async def upload_resource(
    request: Request,
    deps: DependenciesDep,
    # Transport headers, not parameters: the request body's media type documents Content-Type.
    content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
    content_length: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> CreatedId:
    check_content_type(content_type)
    check_declared_length(content_length, deps.max_upload_bytes)
    chunks = with_pace(request.stream(), deps.upload_pace)
    chunks = with_deadline(chunks, deps.upload_max_seconds)
    try:
        with deps.uploads.slot():
            body = await mp3_body(with_size_limit(chunks, deps.max_upload_bytes))
            return CreatedId(id=await handlers.upload_resource(deps, body))
    except BulkheadFull:
        log.info("upload_refused", reason="too many uploads at once")
        raise ApiError(
            503, "Too many uploads at once, try again later", headers={"Retry-After": "1"}
        ) from None
    except StorageUnavailable as exc:
        raise Unavailable(str(exc)) from None
    except CommitOutcomeUnknown:
        raise Unavailable("Database unavailable, try again later") from None
    except UploadExpired:
        raise ApiError(408, "The upload took too long to be stored; nothing was kept") from None
    except ClientDisconnect:
        log.warning("upload_abandoned", reason="client disconnected")
        raise ApiError(400, "The upload was interrupted by the client") from None


@router.get(
    "/{id}",
    response_class=StreamingResponse,
    responses={200: {"content": {"audio/mpeg": {}}}, 206: {"content": {"audio/mpeg": {}}}},
)
async def download_resource(
    id: PathId, deps: DependenciesDep, range: Annotated[str | None, Header()] = None
) -> Response:
    byte_range = range if range and _SINGLE_RANGE.match(range.strip()) else None
    try:
        found = await handlers.open_resource(deps, id, byte_range)
    except RangeNotSatisfiable as exc:
        return error_response(
            416, f"Range not satisfiable: {range}", headers={"Content-Range": f"bytes */{exc.size}"}
        )
    except ObjectLost:
        # 404 (RFC 9110: no current representation), saying the row is there and its file is not
        raise NotFound(f"The file of resource ID={id} is missing from storage") from None
    if found is None:
        raise NotFound(f"Resource with ID={id} not found")
    headers = {"Content-Length": str(found.size), "Accept-Ranges": "bytes"}
    status = 200
    if byte_range and found.content_range:
        status = 206
        headers["Content-Range"] = found.content_range
    return StreamingResponse(
        found.chunks, status_code=status, media_type="audio/mpeg", headers=headers
    )


@router.delete("", response_model=DeletedIds)
async def delete_resources(ids: CsvIds, deps: DependenciesDep) -> DeletedIds:
    return DeletedIds(ids=await handlers.delete_resources(deps, ids))


admin_router = APIRouter(
    prefix="/admin/resources", tags=["admin"], dependencies=[Depends(require_admin_token)]
)


@admin_router.post("/{id}/reprocess", status_code=202, response_model=ReprocessQueued)
async def reprocess_resource(id: PathId, deps: DependenciesDep) -> ReprocessQueued:
    """Publish a resource's `resource.uploaded` again, if it is still in STAGING (what
    `make reconcile FIX=1` does for a resource stuck there); 409 otherwise."""
    if not await deps.run_in_session(repository.reprocess_if_staging, id):
        raise ApiError(409, f"Resource with ID={id} is not in STAGING")
    deps.relay.nudge()
    log.info("resource_reprocess_queued", resource_id=id)
    return ReprocessQueued(id=id)
