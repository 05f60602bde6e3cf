from __future__ import annotations

from botocore.exceptions import ClientError
from fastapi import APIRouter, Request

from service_kit.deps import CsvIds, SessionDep
from service_kit.errors import ApiError, BadRequest
from service_kit.s3 import ensure_bucket
from service_kit.schemas import CreatedId, DeletedIds
from storage_service import repository
from storage_service.schemas import BUCKET_MESSAGE, StorageCreate, StoragePublic

router = APIRouter(prefix="/storages", tags=["storages"])


@router.post("", response_model=CreatedId)
def create_storage(body: StorageCreate, session: SessionDep, request: Request) -> CreatedId:
    # A location whose bucket does not exist is useless: create the bucket before the row.
    try:
        ensure_bucket(request.app.state.s3, body.bucket)
    except ClientError as exc:
        # S3 has the last word on names: a name it rejects is the client's error, not an outage.
        if exc.response.get("Error", {}).get("Code") != "InvalidBucketName":
            raise
        raise BadRequest("Validation error", {"bucket": BUCKET_MESSAGE}) from None
    try:
        new_id = repository.create_storage(session, body.storage_type, body.bucket, body.path)
    except repository.DuplicateLocation:
        raise ApiError(
            409, f"Storage with bucket '{body.bucket}' and path '{body.path}' already exists"
        ) from None
    return CreatedId(id=new_id)


@router.get("", response_model=list[StoragePublic], response_model_by_alias=True)
def list_storages(session: SessionDep) -> list[StoragePublic]:
    return [StoragePublic.model_validate(s) for s in repository.list_storages(session)]


@router.delete("", response_model=DeletedIds)
def delete_storages(ids: CsvIds, session: SessionDep) -> DeletedIds:
    return DeletedIds(ids=repository.delete_storages(session, ids))
