"""The one S3 client factory, and the S3 helpers the services, tests and tooling share."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from service_kit.config import S3Settings

# botocore builds a client's methods at run time, so without stub packages it has no static type.
S3Client = Any


def make_s3_client(settings: S3Settings) -> S3Client:
    client = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=settings.aws_secret_access_key,
        region_name=settings.aws_region,
        config=Config(
            connect_timeout=settings.s3_timeout_seconds,
            read_timeout=settings.s3_timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=32,
            # Checksums only where S3 requires one (DeleteObjects, lifecycle rules), not the
            # CRC32 botocore >= 1.36 adds to every PUT and checks on every GET: it cost 15-20 %
            # of a 5-50 MB PUT against LocalStack (measured 2026-12-02). Integrity does not need it:
            # over plain HTTP every request is SigV4-signed with the payload's SHA-256, and over
            # HTTPS TLS protects the bytes; the processor's parse would catch a damaged MP3.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )
    if settings.s3_expected_bucket_owner:
        _expect_owner(client, settings.s3_expected_bucket_owner)
    return client


def _expect_owner(client: S3Client, account: str) -> None:
    """Every call that can name the bucket's expected owner names it (a copy, its source's too),
    so no call reaches a bucket of another account, whatever a storage location says."""

    def add_owner(params: dict[str, Any], model: Any, **_: Any) -> None:
        for name in ("ExpectedBucketOwner", "ExpectedSourceBucketOwner"):
            if name in model.input_shape.members:
                params.setdefault(name, account)

    client.meta.events.register("provide-client-params.s3.*", add_owner)


# S3 counts a key's length in UTF-8 bytes, at most 1024; the resources' key columns are
# VARCHAR(1024), counted in characters, so a key that fits S3 fits them too.
MAX_KEY_BYTES = 1024
# A resource's file name is a UUID and the extension, always this long: a location's path alone
# decides whether every key built in it fits.
FILE_NAME_LENGTH = 40


def new_file_name() -> str:
    return f"{uuid.uuid4()}.mp3"


def object_key(path: str, file_name: str) -> str:
    """`<path>/<file name>` without a leading slash: S3 keys are relative to the bucket."""
    prefix = path.strip("/")
    return f"{prefix}/{file_name}" if prefix else file_name


def holds_keys(path: str) -> bool:
    """True if every key built in this location fits S3 and the resources' columns."""
    return len(object_key(path, "x" * FILE_NAME_LENGTH).encode()) <= MAX_KEY_BYTES


# S3's ways of saying "not there": GET and COPY name the key or bucket, HEAD has no body.
MISSING_KEY = frozenset({"404", "NoSuchKey", "NotFound"})
MISSING_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})


def error_code(exc: ClientError) -> str:
    """The S3 error code of a failed call (`NoSuchKey`, `InvalidRange`, `404`, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def object_exists(client: S3Client, bucket: str, key: str) -> bool:
    """True if the object is there, False if S3 says it is not; any other error raises."""
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if error_code(exc) in MISSING_KEY:
            return False
        raise


# A multipart upload that nobody completed (its process died mid-upload) holds its parts for
# ever unless the bucket says otherwise.
ABORT_INCOMPLETE_RULE = {
    "ID": "abort-incomplete-multipart",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}


def expire_incomplete_uploads(client: S3Client, bucket: str) -> None:
    """Give the bucket its lifecycle rule: S3 aborts multipart uploads left a day unfinished."""
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [ABORT_INCOMPLETE_RULE]}
    )


# The tag the Storage Service puts on each bucket it creates: only such buckets (and those a
# setting lists) may hold locations, and only they get lifecycle rules written by us.
PLATFORM_TAG = {"Key": "created-by", "Value": "song-platform"}


def mark_as_ours(client: S3Client, bucket: str) -> None:
    client.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [PLATFORM_TAG]})


def is_ours(client: S3Client, bucket: str) -> bool:
    """True if the platform created the bucket (it carries `PLATFORM_TAG`)."""
    try:
        tags = client.get_bucket_tagging(Bucket=bucket)["TagSet"]
    except ClientError as exc:
        if error_code(exc) in ("NoSuchTagSet", "NoSuchTagSetError"):
            return False
        raise
    return PLATFORM_TAG in tags


class BucketNotOwned(ValueError):
    """The bucket exists under another account: no location may send files there."""


class BucketNameRejected(ValueError):
    """S3 refused the bucket's name: S3 has the last word on names, and it is the caller's error."""


def ensure_bucket(client: S3Client, bucket: str) -> bool:
    """Create the bucket unless it exists; True when this call created it.

    Raises `BucketNameRejected` when S3 refuses the name, `BucketNotOwned` when the bucket is
    another account's.
    """
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in ("403", "AccessDenied"):  # ExpectedBucketOwner did not match
            raise BucketNotOwned(bucket) from None
        if error_code(exc) not in MISSING_BUCKET:
            raise
    else:
        # S3 servers that ignore ExpectedBucketOwner (LocalStack) still list only our own.
        if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
            raise BucketNotOwned(bucket)
        return False
    try:
        client.create_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":
            return False
        if error_code(exc) == "BucketAlreadyExists":  # taken, by another account
            raise BucketNotOwned(bucket) from None
        if error_code(exc) == "InvalidBucketName":
            raise BucketNameRejected(bucket) from None
        raise
