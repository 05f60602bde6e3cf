from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from storage_service.app import create_app
from storage_service.config import Settings
from tests.fixture_types import DatabaseUrls
from tests.infra import Infrastructure

ADMIN_TOKEN = "storage-admin-token-for-tests"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def storage_settings(new_database_url: DatabaseUrls, infra: Infrastructure) -> Settings:
    return Settings(
        database_url=new_database_url("storage"),
        s3_endpoint_url=infra.s3_endpoint_url,
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture(scope="module")
def client(storage_settings: Settings) -> Iterator[TestClient]:
    """A client that carries the admin token, as an operator writing storages does."""
    with TestClient(create_app(storage_settings), headers=ADMIN_HEADERS) as test_client:
        yield test_client
