"""A stack whose Resource Service reaches RabbitMQ, S3 and its PostgreSQL through fault
proxies (the workers reach RabbitMQ through one too), with quick retries in the workers."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from devstack.testing.faultproxy import FaultProxy
from devstack.testing.stack import Stack
from tests.fixture_types import DatabaseUrls, StackStarter, VhostFactory
from tests.infra import Infrastructure


@dataclass
class Proxies:
    rabbitmq: FaultProxy
    s3: FaultProxy
    postgres: FaultProxy

    def all(self) -> list[FaultProxy]:
        return [self.rabbitmq, self.s3, self.postgres]


def proxy_to(url: str, http: bool = False) -> FaultProxy:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    return FaultProxy(parts.port, parts.hostname, http=http)


@pytest.fixture(scope="module")
def proxies(infra: Infrastructure) -> Iterator[Proxies]:
    made = Proxies(
        rabbitmq=proxy_to(infra.rabbitmq_url),
        s3=proxy_to(infra.s3_endpoint_url, http=True),
        postgres=proxy_to(infra.postgres_url),
    )
    for proxy in made.all():
        proxy.start()
    yield made
    for proxy in made.all():
        proxy.close()


@pytest.fixture(scope="module")
def stack(
    infra: Infrastructure,
    start_module_stack: StackStarter,
    new_database_url: DatabaseUrls,
    new_rabbitmq_vhost: VhostFactory,
    proxies: Proxies,
) -> Stack:
    rabbitmq_url = new_rabbitmq_vhost("pipeline").url
    resource_db = new_database_url("resource")
    return start_module_stack(
        "pipeline",
        rabbitmq_url=rabbitmq_url,
        processor_env={
            "RABBITMQ_URL": proxies.rabbitmq.via(rabbitmq_url),
            "RETRY_ATTEMPTS": "3",
            "RETRY_MAX_WAIT_SECONDS": "0.5",
        },
        resource_database_url=resource_db,
        resource_env={
            "RABBITMQ_URL": proxies.rabbitmq.via(rabbitmq_url),
            "S3_ENDPOINT_URL": proxies.s3.via(infra.s3_endpoint_url),
            "DATABASE_URL": proxies.postgres.via(resource_db),
            "S3_TIMEOUT_SECONDS": "2",
        },
    )


@pytest.fixture(autouse=True)
def healed_after_each_test(stack: Stack, proxies: Proxies) -> Iterator[None]:
    """Each test starts with every proxy passing and every process running."""
    yield
    for proxy in proxies.all():
        proxy.heal()
    for service in stack.services:
        if service.process is not None and service.process.poll() is None:
            service.signal(signal.SIGCONT)
        else:
            service.start()
    for service in stack.services:
        service.wait_healthy()
