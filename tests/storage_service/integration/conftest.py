import pytest
from fastapi.testclient import TestClient

from storage_service.app import create_app
from storage_service.config import Settings


@pytest.fixture(scope="module")
def storage_settings(new_database_url, infra) -> Settings:
    return Settings(database_url=new_database_url("storage"), s3_endpoint_url=infra.s3_endpoint_url)


@pytest.fixture(scope="module")
def client(storage_settings):
    with TestClient(create_app(storage_settings)) as test_client:
        yield test_client
