"""Two replicas of the Storage Service starting at once against an empty database."""

from pathlib import Path

import httpx2

from tests.fixture_types import DatabaseUrls
from tests.infra import Infrastructure
from tests.replicas import started_at_once


def test_two_replicas_starting_at_once_seed_exactly_one_row_of_each_type(
    new_database_url: DatabaseUrls, infra: Infrastructure, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": new_database_url("replicas"), "S3_ENDPOINT_URL": infra.s3_endpoint_url}
    with started_at_once("storage_service", env, tmp_path) as replicas:
        for replica in replicas:
            rows = httpx2.get(f"{replica.url}/storages").json()
            assert [(r["storageType"], r["bucket"], r["path"]) for r in rows] == [
                ("STAGING", "resources-staging", "/staging/"),
                ("PERMANENT", "resources-permanent", "/permanent/"),
            ]
