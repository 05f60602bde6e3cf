"""The Storage Service's service layer: a location is only registered with a bucket that exists
and that the platform created (or a setting lists), and only so many locations exist."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service_kit.retries import retry_at_startup
from service_kit.s3 import S3Client, ensure_bucket, expire_incomplete_uploads, is_ours, mark_as_ours
from storage_service import repository
from storage_service.errors import BucketNotOurs, TooManyLocations

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LocationRules:
    # Existing buckets a location may use though the platform did not create them.
    usable_buckets: frozenset[str]
    max_storages: int


def create_storage(
    session: Session,
    s3: S3Client,
    location: tuple[str, str, str],
    rules: LocationRules,
) -> int:
    """Create the bucket before the row: a location whose bucket does not exist is useless.

    `location` is (storage type, bucket, path). Raises `TooManyLocations` at `max_storages`
    rows (counted under a lock, so concurrent POSTs cannot pass it), `BucketNameRejected` when S3
    refuses the name, `BucketNotOwned` for another account's bucket, `BucketNotOurs` for an
    existing bucket the platform did not create, `DuplicateLocation` for a known location.
    """
    storage_type, bucket, path = location
    if repository.lock_and_count(session) >= rules.max_storages:
        raise TooManyLocations
    if ensure_bucket(s3, bucket):
        _claim(s3, bucket)
    elif bucket not in rules.usable_buckets and not is_ours(s3, bucket):
        raise BucketNotOurs(bucket)
    return repository.create_storage(session, storage_type, bucket, path)


@retry_at_startup()
def ensure_location_buckets(s3: S3Client, session_factory: sessionmaker[Session]) -> None:
    """Every registered location's bucket exists (the seeded ones included); only the buckets
    the platform created get its lifecycle rule, which replaces any rules they had."""
    with session_factory() as session:
        buckets = {s.bucket for s in repository.list_storages(session)}
    for bucket in sorted(buckets):
        if ensure_bucket(s3, bucket):
            _claim(s3, bucket)
        elif is_ours(s3, bucket):
            expire_incomplete_uploads(s3, bucket)


def _claim(s3: S3Client, bucket: str) -> None:
    """A bucket the platform just created: mark it as ours and give it our lifecycle rule."""
    mark_as_ours(s3, bucket)
    expire_incomplete_uploads(s3, bucket)
    log.info("bucket_created", bucket=bucket)
