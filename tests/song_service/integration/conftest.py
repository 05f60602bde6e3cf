from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from song_service.app import create_app
from song_service.config import Settings
from tests.fixture_types import DatabaseUrls


@pytest.fixture(scope="module")
def client(new_database_url: DatabaseUrls) -> Iterator[TestClient]:
    settings = Settings(database_url=new_database_url("song"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client
