"""The Storage Service's service layer: a location is only registered with a bucket that exists."""

from __future__ import annotations

import structlog
from sqlalchemy.orm import Session, sessionmaker

from service_kit.retries import retry_at_startup
from service_kit.s3 import S3Client, ensure_bucket, expire_incomplete_uploads
from storage_service import repository

log = structlog.get_logger(__name__)


def create_storage(
    session: Session, s3: S3Client, storage_type: str, bucket: str, path: str
) -> int:
    """Create the bucket before the row: a location whose bucket does not exist is useless.

    Raises `BucketNameRejected` when S3 refuses the name, `BucketNotOwned` for another
    account's bucket, `DuplicateLocation` for a known one.
    """
    ensure_bucket(s3, bucket)
    return repository.create_storage(session, storage_type, bucket, path)


@retry_at_startup()
def ensure_location_buckets(s3: S3Client, session_factory: sessionmaker[Session]) -> None:
    """Every registered location's bucket exists (the seeded ones included)."""
    with session_factory() as session:
        buckets = {s.bucket for s in repository.list_storages(session)}
    for bucket in sorted(buckets):
        if ensure_bucket(s3, bucket):
            log.info("bucket_created", bucket=bucket)
        expire_incomplete_uploads(s3, bucket)
