from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service_kit.db import make_engine
from service_kit.s3 import S3Client
from storage_service.app import create_app
from storage_service.config import Settings
from storage_service.models import Storage
from tests.fixture_types import DatabaseUrls
from tests.infra import Infrastructure
from tests.storage_service.integration.conftest import ADMIN_HEADERS, ADMIN_TOKEN


def count_by_type(database_url: str) -> dict[str, int]:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Storage.storage_type, func.count()).group_by(Storage.storage_type)
        ).all()
    engine.dispose()
    return dict(rows)


def start_and_stop(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200


def test_starting_twice_seeds_one_row_of_each_type(
    new_database_url: DatabaseUrls, infra: Infrastructure
) -> None:
    settings = Settings(
        database_url=new_database_url("seed"), s3_endpoint_url=infra.s3_endpoint_url
    )
    start_and_stop(settings)
    start_and_stop(settings)
    assert count_by_type(settings.database_url) == {"STAGING": 1, "PERMANENT": 1}


def test_a_deleted_seed_row_comes_back_at_the_next_start(
    new_database_url: DatabaseUrls, infra: Infrastructure
) -> None:
    settings = Settings(
        database_url=new_database_url("seed"),
        s3_endpoint_url=infra.s3_endpoint_url,
        admin_token=ADMIN_TOKEN,
    )
    with TestClient(create_app(settings), headers=ADMIN_HEADERS) as client:
        staging = next(s for s in client.get("/storages").json() if s["storageType"] == "STAGING")
        assert client.delete(f"/storages?id={staging['id']}").json() == {"ids": [staging["id"]]}
    start_and_stop(settings)
    assert count_by_type(settings.database_url) == {"STAGING": 1, "PERMANENT": 1}


def test_seeding_creates_missing_buckets(
    new_database_url: DatabaseUrls, infra: Infrastructure, s3: S3Client
) -> None:
    staging, permanent = "seed-staging-test", "seed-permanent-test"
    for bucket in (staging, permanent):
        if bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
            s3.delete_bucket(Bucket=bucket)
    settings = Settings(
        database_url=new_database_url("seed"),
        s3_endpoint_url=infra.s3_endpoint_url,
        seed_staging_bucket=staging,
        seed_permanent_bucket=permanent,
    )
    start_and_stop(settings)
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert {staging, permanent} <= names
    for bucket in (staging, permanent):
        # Parts of an upload nobody completed (its process died) do not stay for ever.
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        assert [r["AbortIncompleteMultipartUpload"] for r in rules] == [{"DaysAfterInitiation": 1}]
