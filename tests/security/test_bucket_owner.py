"""Storage locations you can trust: the Storage Service refuses a bucket of another account, and
every S3 call of ours names the account that must own the bucket (ExpectedBucketOwner)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest

from devstack.testing.stack import Stack
from service_kit.config import S3Settings
from service_kit.s3 import S3Client, make_s3_client
from tests.contract import assert_validation_error
from tests.infra import Infrastructure

# LocalStack takes a 12-digit access key id as the account: this one is not ours.
OTHER_ACCOUNT = "111111111111"


@pytest.fixture(scope="module")
def foreign_bucket(infra: Infrastructure) -> Iterator[str]:
    other = boto3.client(
        "s3",
        endpoint_url=infra.s3_endpoint_url,
        aws_access_key_id=OTHER_ACCOUNT,
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    name = f"foreign-{uuid.uuid4().hex[:12]}"
    other.create_bucket(Bucket=name)
    yield name
    other.delete_bucket(Bucket=name)


def storages(stack: Stack) -> list[Any]:
    found: list[Any] = stack.http.get(f"{stack.storage.url}/storages").json()
    return found


def test_a_bucket_of_another_account_is_refused_and_nothing_is_stored(
    stack: Stack, foreign_bucket: str
) -> None:
    before = storages(stack)
    response = stack.http.post(
        f"{stack.storage.url}/storages",
        json={"storageType": "STAGING", "bucket": foreign_bucket, "path": "/stolen/"},
        headers=stack.admin_headers,
    )
    assert_validation_error(response, {"bucket": "belongs to another account: not usable here"})
    assert storages(stack) == before


def test_a_new_bucket_of_our_own_is_accepted(stack: Stack) -> None:
    bucket = f"ours-{uuid.uuid4().hex[:12]}"
    response = stack.http.post(
        f"{stack.storage.url}/storages",
        json={"storageType": "STAGING", "bucket": bucket, "path": "/mine/"},
        headers=stack.admin_headers,
    )
    assert response.status_code == 200, response.text
    stack.http.delete(
        f"{stack.storage.url}/storages",
        params={"id": response.json()["id"]},
        headers=stack.admin_headers,
    ).raise_for_status()


def test_every_object_call_names_the_expected_bucket_owner(
    infra: Infrastructure, s3: S3Client
) -> None:
    """The client the services use, against the real S3 server: each request it sends to a
    bucket carries the owner header (a copy, its source's too)."""
    client = make_s3_client(S3Settings(s3_endpoint_url=infra.s3_endpoint_url))
    sent: list[tuple[str, dict[str, Any]]] = []
    client.meta.events.register(
        "before-send.s3.*",
        lambda request, **kw: sent.append((kw["event_name"].rsplit(".", 1)[-1], request.headers)),
    )
    bucket, key = "resources-staging", f"owner-check/{uuid.uuid4().hex}.mp3"
    client.put_object(Bucket=bucket, Key=key, Body=b"ID3")
    client.head_object(Bucket=bucket, Key=key)
    client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.copy_object(Bucket=bucket, Key=f"{key}.copy", CopySource={"Bucket": bucket, "Key": key})
    upload = client.create_multipart_upload(Bucket=bucket, Key=f"{key}.parts")
    client.abort_multipart_upload(Bucket=bucket, Key=f"{key}.parts", UploadId=upload["UploadId"])
    client.delete_object(Bucket=bucket, Key=key)
    client.delete_object(Bucket=bucket, Key=f"{key}.copy")
    assert len(sent) == 8
    for operation, headers in sent:
        assert header(headers, "x-amz-expected-bucket-owner") == "000000000000", operation
    copy_headers = dict(sent)["CopyObject"]
    assert header(copy_headers, "x-amz-source-expected-bucket-owner") == "000000000000"


def header(headers: Mapping[str, object], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        return value.decode()
    assert value is None or isinstance(value, str), value
    return value
