from __future__ import annotations

from fastapi import APIRouter, Depends

from service_kit.deps import CsvIds, DatabaseDep, require_admin_token
from service_kit.errors import ApiError, BadRequest
from service_kit.s3 import BucketNameRejected, BucketNotOwned
from service_kit.schemas import CreatedId, DeletedIds
from storage_service import handlers, repository
from storage_service.deps import LocationRulesDep, S3Dep
from storage_service.errors import BucketNotOurs, DuplicateLocation, TooManyLocations
from storage_service.schemas import BUCKET_MESSAGE, StorageCreate, StoragePublic

router = APIRouter(prefix="/storages", tags=["storages"])
# Where every upload and move goes is management: writing it takes the admin token, as /admin
# does (401 without, 403 wrong); reading it stays open.
ADMIN_ONLY = [Depends(require_admin_token)]
NOT_OURS_MESSAGE = "was not created by this platform: list it in ALLOWED_BUCKETS to use it"


@router.post("", response_model=CreatedId, dependencies=ADMIN_ONLY)
async def create_storage(
    body: StorageCreate, database: DatabaseDep, s3: S3Dep, rules: LocationRulesDep
) -> CreatedId:
    location = (body.storage_type, body.bucket, body.path)
    try:
        new_id = await database.run(handlers.create_storage, s3, location, rules)
    except TooManyLocations:
        raise ApiError(
            409, f"At most {rules.max_storages} storage locations may exist: delete one first"
        ) from None
    except BucketNotOurs:
        raise BadRequest("Validation error", {"bucket": NOT_OURS_MESSAGE}) from None
    except BucketNameRejected:
        raise BadRequest("Validation error", {"bucket": BUCKET_MESSAGE}) from None
    except BucketNotOwned:
        raise BadRequest(
            "Validation error", {"bucket": "belongs to another account: not usable here"}
        ) from None
    except DuplicateLocation:
        raise ApiError(
            409, f"Storage with bucket '{body.bucket}' and path '{body.path}' already exists"
        ) from None
    return CreatedId(id=new_id)


@router.get("", response_model=list[StoragePublic], response_model_by_alias=True)
async def list_storages(database: DatabaseDep) -> list[StoragePublic]:
    rows = await database.run(repository.list_storages)
    return [StoragePublic.model_validate(s) for s in rows]


@router.delete("", response_model=DeletedIds, dependencies=ADMIN_ONLY)
async def delete_storages(ids: CsvIds, database: DatabaseDep) -> DeletedIds:
    return DeletedIds(ids=await database.run(repository.delete_storages, ids))
