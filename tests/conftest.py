"""Fixtures every layer of tests shares. Each resource has one fixture."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pytest import TempPathFactory

from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack, start_stack
from service_kit.config import S3Settings
from service_kit.s3 import S3Client, make_s3_client
from tests.fixture_types import DatabaseUrls, VhostFactory
from tests.infra import Infrastructure, RabbitVhost, infrastructure

# In-process apps are called through Starlette's TestClient, whose Host header is `testserver`;
# every other name stays refused (tests/security/test_allowed_hosts.py).
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infrastructure]:
    with infrastructure() as found:
        yield found


@pytest.fixture(scope="session")
def sandbox(infra: Infrastructure) -> Iterator[Sandbox]:
    """Fresh databases and vhosts for this session, all removed when it ends."""
    with Sandbox("test", infra.postgres_url, infra.rabbitmq_url, infra.rabbitmqctl) as made:
        yield made


@pytest.fixture(scope="session")
def new_database_url(sandbox: Sandbox) -> Callable[[str], str]:
    """A factory of fresh database URLs (the services create the databases on start)."""
    return sandbox.database_url


@pytest.fixture(scope="session")
def new_rabbitmq_vhost(infra: Infrastructure, sandbox: Sandbox) -> Callable[[str], RabbitVhost]:
    """A factory of fresh RabbitMQ virtual hosts."""

    def make(prefix: str) -> RabbitVhost:
        name, url = sandbox.vhost(prefix)
        return RabbitVhost(name, url, infra)

    return make


@pytest.fixture
def rabbitmq_vhost(new_rabbitmq_vhost: VhostFactory) -> RabbitVhost:
    """A vhost of this test's own."""
    return new_rabbitmq_vhost("test")


@pytest.fixture(scope="module")
def start_module_stack(
    infra: Infrastructure,
    new_database_url: DatabaseUrls,
    new_rabbitmq_vhost: VhostFactory,
    tmp_path_factory: TempPathFactory,
) -> Iterator[Callable[..., Stack]]:
    """Starts the whole platform as processes for this test module, with its own databases and
    vhost (`start_stack`'s options pass through); everything stops when the module ends."""
    started: list[Stack] = []

    def start(
        name: str,
        rabbitmq_url: str | None = None,
        new_database_url: Callable[[str], str] = new_database_url,
        **options: Any,
    ) -> Stack:
        stack = start_stack(
            new_database_url,
            rabbitmq_url or new_rabbitmq_vhost(name).url,
            infra.s3_endpoint_url,
            tmp_path_factory.mktemp(name),
            **options,
        )
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def s3_settings(infra: Infrastructure) -> S3Settings:
    return S3Settings(s3_endpoint_url=infra.s3_endpoint_url)


@pytest.fixture(scope="session")
def s3(s3_settings: S3Settings) -> S3Client:
    return make_s3_client(s3_settings)


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans of this module's tests, from the process's SDK provider (set once per process)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()
