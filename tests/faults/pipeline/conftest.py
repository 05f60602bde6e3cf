"""A stack whose Resource Service reaches RabbitMQ, S3 and its PostgreSQL through fault
proxies (the workers reach RabbitMQ through one too), with quick retries in the workers."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from devstack.testing.faultproxy import FaultProxy


@dataclass
class Proxies:
    rabbitmq: FaultProxy
    s3: FaultProxy
    postgres: FaultProxy

    def all(self) -> list[FaultProxy]:
        return [self.rabbitmq, self.s3, self.postgres]


def upstream(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


@pytest.fixture(scope="module")
def proxies(infra):
    made = Proxies(
        rabbitmq=FaultProxy(*reversed(upstream(infra.rabbitmq_url))),
        s3=FaultProxy(*reversed(upstream(infra.s3_endpoint_url)), http=True),
        postgres=FaultProxy(*reversed(upstream(infra.postgres_url))),
    )
    for proxy in made.all():
        proxy.start()
    yield made
    for proxy in made.all():
        proxy.close()


@pytest.fixture(scope="module")
def stack(infra, start_module_stack, new_database_url, new_rabbitmq_vhost, proxies):
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
def healed_after_each_test(stack, proxies):
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
