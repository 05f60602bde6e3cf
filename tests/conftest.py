"""Fixtures every layer of tests shares. Each resource has one fixture."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from service_kit.config import S3Settings
from service_kit.s3 import make_s3_client
from tests.infra import Infrastructure, RabbitVhost, infrastructure


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    with infrastructure() as found:
        yield found


@pytest.fixture(scope="session")
def new_database_url(infra: Infrastructure) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, uniquely named databases; all dropped when the session ends."""
    created: list[str] = []

    def make(prefix: str) -> str:
        name = f"test_{prefix}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return infra.database_url(name)

    yield make
    admin = make_url(infra.database_url("postgres")).set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def new_rabbitmq_vhost(infra: Infrastructure) -> Iterator[Callable[[str], RabbitVhost]]:
    """A factory of fresh RabbitMQ virtual hosts; all deleted when the session ends."""
    created: list[str] = []

    def make(prefix: str) -> RabbitVhost:
        name = f"test_{prefix}_{uuid.uuid4().hex[:8]}"
        infra.rabbitmqctl("add_vhost", name)
        created.append(name)
        infra.rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return RabbitVhost(name, infra.vhost_url(name), infra)

    yield make
    for name in created:
        infra.rabbitmqctl("delete_vhost", name)


@pytest.fixture
def rabbitmq_vhost(new_rabbitmq_vhost) -> RabbitVhost:
    """A vhost of this test's own."""
    return new_rabbitmq_vhost("test")


@pytest.fixture(scope="session")
def s3_settings(infra: Infrastructure) -> S3Settings:
    return S3Settings(s3_endpoint_url=infra.s3_endpoint_url)


@pytest.fixture(scope="session")
def s3(s3_settings: S3Settings):
    return make_s3_client(s3_settings)
