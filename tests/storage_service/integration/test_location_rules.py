"""A storage row cannot break or redirect uploads (issue "No one in, nothing starved", item 2):
its keys fit S3 and the resources' columns counted in bytes, its bucket is one the platform
created or a setting lists, lifecycle rules go only to the platform's buckets, and the number of
rows is bounded. S3's key limit is 1024 bytes of UTF-8:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
"""

from __future__ import annotations

import uuid

import httpx2
import pytest
from fastapi.testclient import TestClient

from service_kit.s3 import PLATFORM_TAG, S3Client, is_ours
from storage_service.app import create_app
from storage_service.config import Settings
from storage_service.routes import NOT_OURS_MESSAGE
from storage_service.schemas import PATH_MESSAGE
from tests.contract import assert_error, assert_validation_error
from tests.fixture_types import DatabaseUrls
from tests.infra import Infrastructure
from tests.storage_service.integration.conftest import ADMIN_HEADERS, ADMIN_TOKEN

# Someone's own rule on a bucket the platform did not create: ours must never replace it.
THEIR_RULE = {
    "ID": "their-own-rule",
    "Status": "Enabled",
    "Filter": {"Prefix": "tmp/"},
    "Expiration": {"Days": 7},
}


def new_bucket() -> str:
    return f"rules-{uuid.uuid4().hex[:12]}"


def post(client: TestClient, bucket: str, path: str = "/files/") -> httpx2.Response:
    return client.post(
        "/storages", json={"storageType": "PERMANENT", "bucket": bucket, "path": path}
    )


def bucket_names(s3: S3Client) -> set[str]:
    return {b["Name"] for b in s3.list_buckets()["Buckets"]}


@pytest.mark.parametrize(
    "path",
    [
        "/" + "a" * 983,  # 983 + "/" + a 40-character file name: 1024 bytes
        "/" + "a" * 983 + "/",
        "/" + "é" * 491 + "a",  # 983 bytes in 492 characters
    ],
)
def test_a_path_whose_keys_fit_exactly_is_accepted(client: TestClient, path: str) -> None:
    response = post(client, new_bucket(), path)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/" + "a" * 984,  # one byte too many: today's 985-1024 characters
        "/" + "a" * 1023,
        "/" + "é" * 492,  # 984 bytes in 492 characters: too long for S3 though short
        "/" + "€" * 400,  # 1200 bytes
    ],
)
def test_a_path_whose_keys_would_not_fit_is_refused_and_adds_no_row(
    client: TestClient, s3: S3Client, path: str
) -> None:
    before = client.get("/storages").json()
    bucket = new_bucket()
    assert_validation_error(post(client, bucket, path), {"path": PATH_MESSAGE})
    assert client.get("/storages").json() == before
    assert bucket not in bucket_names(s3)


def test_a_bucket_the_platform_creates_is_marked_as_ours(client: TestClient, s3: S3Client) -> None:
    bucket = new_bucket()
    assert post(client, bucket).status_code == 200
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [PLATFORM_TAG]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["abort-incomplete-multipart"]


def test_an_existing_bucket_the_platform_did_not_create_is_refused(
    client: TestClient, s3: S3Client
) -> None:
    bucket = new_bucket()
    s3.create_bucket(Bucket=bucket)  # our account's, but not made by the platform
    before = client.get("/storages").json()
    assert_validation_error(post(client, bucket), {"bucket": NOT_OURS_MESSAGE})
    assert client.get("/storages").json() == before
    assert not is_ours(s3, bucket)


def test_a_listed_bucket_is_accepted_and_keeps_its_own_lifecycle_rules(
    new_database_url: DatabaseUrls, infra: Infrastructure, s3: S3Client
) -> None:
    bucket = new_bucket()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [THEIR_RULE]}
    )
    settings = Settings(
        database_url=new_database_url("rules"),
        s3_endpoint_url=infra.s3_endpoint_url,
        admin_token=ADMIN_TOKEN,
        allowed_buckets=f"some-other-name, {bucket}",
    )
    with TestClient(create_app(settings), headers=ADMIN_HEADERS) as client:
        assert post(client, bucket).status_code == 200
    # The next start walks every registered bucket: this one is not the platform's.
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert [r["ID"] for r in rules] == ["their-own-rule"]


def test_the_number_of_rows_is_bounded_and_the_refused_post_creates_no_bucket(
    new_database_url: DatabaseUrls, infra: Infrastructure, s3: S3Client
) -> None:
    settings = Settings(
        database_url=new_database_url("rules"),
        s3_endpoint_url=infra.s3_endpoint_url,
        admin_token=ADMIN_TOKEN,
        max_storages=3,  # the two seed rows and one more
    )
    with TestClient(create_app(settings), headers=ADMIN_HEADERS) as client:
        assert post(client, new_bucket()).status_code == 200
        before = client.get("/storages").json()
        bucket = new_bucket()
        assert_error(
            post(client, bucket), 409, "At most 3 storage locations may exist: delete one first"
        )
        assert client.get("/storages").json() == before
        assert bucket not in bucket_names(s3)
        # Deleting one makes room again.
        client.delete(f"/storages?id={before[-1]['id']}").raise_for_status()
        assert post(client, bucket).status_code == 200
