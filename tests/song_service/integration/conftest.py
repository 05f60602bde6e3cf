import pytest
from fastapi.testclient import TestClient

from song_service.app import create_app
from song_service.config import Settings


@pytest.fixture(scope="module")
def client(new_database_url):
    settings = Settings(database_url=new_database_url("song"))
    with TestClient(create_app(settings)) as test_client:
        yield test_client
