"""Where the tests find PostgreSQL, RabbitMQ and S3: containers when a Docker engine answers,
otherwise the services this machine runs (PostgreSQL and RabbitMQ, or ours when none answers:
devstack.runner.servers) and LocalStack on the host."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from devstack import localstack
from devstack.runner import servers
from devstack.testing.sandbox import LOCAL_POSTGRES, LOCAL_RABBITMQ


@dataclass(frozen=True)
class Infrastructure:
    postgres_url: str  # server URL without a database name
    rabbitmq_url: str  # the default virtual host
    s3_endpoint_url: str
    rabbitmqctl: Callable[..., str]  # runs `rabbitmqctl ARGS` where the broker runs; its output


@dataclass(frozen=True)
class RabbitVhost:
    """A virtual host of the test broker: the contract fixes the queue names, so each stack of
    services under test gets its own queues this way."""

    name: str
    url: str  # the broker URL with this vhost as its path
    infra: Infrastructure

    def close_connections(self) -> None:
        """Drop every client connection to this vhost, as a broker restart would."""
        self.infra.rabbitmqctl("close_all_connections", "-p", self.name, "closed by a test")


def docker_engine_answers() -> bool:
    # The docker client may be installed without an engine: only an answer tells. The socket is
    # tried first because the client leaks its socket when the engine refuses.
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(1)
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError:
                return False
    try:
        import docker

        # mypy takes the repository's docker/ folder (compose files) for this package.
        client = docker.from_env(timeout=2)  # type: ignore[attr-defined]
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def image(name: str) -> str:
    """The official image, or the stand-in devstack.containers.docker_api runs in its place where no
    registry answers (STANDIN_IMAGES: "name=tag,...")."""
    pairs = [p.split("=", 1) for p in os.environ.get("STANDIN_IMAGES", "").split(",") if p]
    return dict(pairs).get(name, name)


@contextlib.contextmanager
def containers() -> Iterator[Infrastructure]:
    from testcontainers.localstack import LocalStackContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with (
        PostgresContainer(image("postgres:16.6-alpine"), driver="psycopg") as pg,
        RabbitMqContainer(image("rabbitmq:4.4.1-management")) as mq,
        LocalStackContainer(image("localstack/localstack:4.13.1")).with_services("s3") as s3,
    ):
        pg_url = pg.get_connection_url().rsplit("/", 1)[0]
        params = mq.get_connection_params()

        def container_rabbitmqctl(*args: str) -> str:
            code, output = mq.exec(["rabbitmqctl", "-q", *args])
            if code != 0:
                raise RuntimeError(output)
            return str(output.decode())

        yield Infrastructure(
            postgres_url=pg_url,
            rabbitmq_url=f"amqp://guest:guest@{params.host}:{params.port}/",
            s3_endpoint_url=s3.get_url(),
            rabbitmqctl=container_rabbitmqctl,
        )


@contextlib.contextmanager
def local_services() -> Iterator[Infrastructure]:
    """The machine's PostgreSQL and RabbitMQ (ours when none answers), LocalStack on the host."""
    with servers.local() as rabbitmqctl:
        process = localstack.start()  # None when one already answers: then we leave it running
        try:
            yield Infrastructure(LOCAL_POSTGRES, LOCAL_RABBITMQ, localstack.endpoint(), rabbitmqctl)
        finally:
            if process is not None:
                localstack.stop_process(process)


def infrastructure() -> contextlib.AbstractContextManager[Infrastructure]:
    if docker_engine_answers():
        return containers()
    # TESTS_REQUIRE_CONTAINERS: set by devstack.containers.docker_api; no fallback then.
    if os.environ.get("TESTS_REQUIRE_CONTAINERS"):
        raise RuntimeError(f"no Docker API answers at {os.environ.get('DOCKER_HOST')}")
    return local_services()
