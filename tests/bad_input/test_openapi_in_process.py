"""schemathesis over the Storage and Song Services' OpenAPI, each app in-process with its
lifespan entered (real PostgreSQL and S3): no 5xx, every response as documented, every 4xx in
the contract's error format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis import Case

from service_kit.s3 import S3Client
from song_service.app import create_app as create_song_app
from song_service.config import Settings as SongSettings
from storage_service.app import create_app as create_storage_app
from storage_service.config import Settings as StorageSettings
from tests.bad_input.openapi_fuzz import FUZZ_SETTINGS, check_response, send
from tests.fixture_types import DatabaseUrls
from tests.infra import Infrastructure

# The OpenAPI document needs no connection: create_app connects only in its lifespan.
storage_schema = schemathesis.openapi.from_dict(create_storage_app().openapi())
# A path must be printable (str.isprintable); JSON Schema can state that exactly for ASCII only.
storage_schema.config.generation.update(codec="ascii")
song_schema = schemathesis.openapi.from_dict(create_song_app().openapi())


@pytest.fixture(scope="module")
def storage_client(
    new_database_url: DatabaseUrls, infra: Infrastructure, s3: S3Client
) -> Iterator[TestClient]:
    settings = StorageSettings(
        database_url=new_database_url("storage"), s3_endpoint_url=infra.s3_endpoint_url
    )
    buckets_before = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    with TestClient(create_storage_app(settings)) as client:
        yield client
        registered = {row["bucket"] for row in client.get("/storages").json()}
    # Every accepted POST created its bucket; remove the (empty) ones this run brought.
    for bucket in registered - buckets_before:
        s3.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module")
def song_client(new_database_url: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_song_app(SongSettings(database_url=new_database_url("song")))) as client:
        yield client


@storage_schema.parametrize()
@FUZZ_SETTINGS
def test_storage_service_answers_any_input_as_documented(
    case: Case[Any], storage_client: TestClient
) -> None:
    check_response(case, send(storage_client, case))


@song_schema.parametrize()
@FUZZ_SETTINGS
def test_song_service_answers_any_input_as_documented(
    case: Case[Any], song_client: TestClient
) -> None:
    check_response(case, send(song_client, case))
