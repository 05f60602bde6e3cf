"""What `make run` runs: each service's compose name, package, port and environment.

The defaults are the contract's addresses (docs/contract.md §6). Every one can be changed with a
`RUN_*` variable, so that a test drives the real `make run` on ports, databases and a vhost of its
own without touching what a person runs on this machine.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from devstack import REPO, gateway, localstack
from devstack.runner import servers
from devstack.testing.sandbox import LOCAL_POSTGRES, LOCAL_RABBITMQ, provision_database
from resource_service.config import Settings as ResourceServiceSettings

LOCALSTACK = "localstack"
GATEWAY = "gateway"


class RunSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUN_", extra="ignore")

    dir: Path = REPO / ".run"  # supervisord's socket, config and log, and the services' logs
    restart: Literal["no", "on-failure"] = "no"  # `make run RESTART=on-failure`
    resource_port: int = 8080
    song_port: int = 8081
    storage_port: int = 8082
    processor_port: int = 8083
    gateway_port: int = 8000  # the front door (devstack.gateway)
    replicas: int = Field(1, ge=1, le=4)  # Resource Service replicas behind the gateway
    resource_replica_port: int = 8084  # the second replica's; a third's is the next, ...
    s3_port: int = localstack.DEFAULT_PORT
    postgres_url: str = LOCAL_POSTGRES  # a server; each service gets `<prefix><service>_db`
    database_prefix: str = ""
    rabbitmq_url: str = LOCAL_RABBITMQ


DATABASES = ("storage", "song", "resource")


def database_name(settings: RunSettings, name: str) -> str:
    return f"{settings.database_prefix}{name}_db"


def database_role(settings: RunSettings, name: str) -> str:
    return f"{settings.database_prefix}{name}_service"


def service_database_url(settings: RunSettings, name: str) -> str:
    """The service's database, as its own role (see `provision_databases`)."""
    url = make_url(f"{settings.postgres_url.rstrip('/')}/{database_name(settings, name)}")
    role = database_role(settings, name)
    return url.set(username=role, password=None).render_as_string(hide_password=False)


def provision_databases(settings: RunSettings) -> None:
    """Each service's database owned by a role of its own, which the service logs in as: no
    service can read another's (this machine's PostgreSQL trusts local logins, so no password)."""
    for name in DATABASES:
        provision_database(
            settings.postgres_url, database_name(settings, name), database_role(settings, name)
        )


def admin_token(settings: RunSettings) -> str:
    """The run's management token: ADMIN_TOKEN when set, else a random one kept in the run's
    folder (mode 600), so `curl -H "Authorization: Bearer $(cat .run/admin-token)"` works."""
    if os.environ.get("ADMIN_TOKEN"):
        return os.environ["ADMIN_TOKEN"]
    path = settings.dir / "admin-token"
    if not path.exists():
        settings.dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


@dataclass(frozen=True)
class Program:
    """One process `make run` supervises, under the name compose gives it."""

    name: str
    command: list[str]
    port: int
    health_path: str  # "" for PostgreSQL and RabbitMQ: they are asked in their own protocols
    env: dict[str, str]
    user: str | None = None  # `child` switches to this user first (PostgreSQL, RabbitMQ)
    stop_signal: str = "TERM"

    @property
    def url(self) -> str:
        scheme = {"postgres": "postgresql", "rabbitmq": "amqp"}.get(self.name, "http")
        return f"{scheme}://127.0.0.1:{self.port}"


SERVERS = ("postgres", "rabbitmq")  # started by `make run` only when none answers


def server_program(server: servers.Server) -> Program:
    return Program(
        server.name, server.command, server.port, "", server.env, server.user, server.stop_signal
    )


def server_programs(settings: RunSettings) -> list[Program]:
    """PostgreSQL, RabbitMQ and LocalStack, each started only when nothing answers for it."""
    localstack_command = ["devstack.localstack", "serve", "--port", str(settings.s3_port)]
    return [
        server_program(servers.postgres(settings.postgres_url, settings.dir)),
        server_program(servers.rabbitmq(settings.rabbitmq_url, settings.dir)),
        Program(
            LOCALSTACK,
            [sys.executable, "-m", *localstack_command],
            settings.s3_port,
            "/_localstack/init",
            {},
        ),
    ]


def programs(settings: RunSettings) -> list[Program]:
    """PostgreSQL, RabbitMQ and LocalStack first, then the services in the order they depend
    on each other."""

    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    s3 = url(settings.s3_port)
    database = partial(service_database_url, settings)

    def service(name: str, package: str, port: int, **env: str) -> Program:
        command = [sys.executable, "-m", package]
        return Program(name, command, port, "/health", {"PORT": str(port), **env})

    return [
        *server_programs(settings),
        service(
            "storage-service",
            "storage_service",
            settings.storage_port,
            DATABASE_URL=database("storage"),
            S3_ENDPOINT_URL=s3,
            ADMIN_TOKEN=admin_token(settings),
        ),
        service("song-service", "song_service", settings.song_port, DATABASE_URL=database("song")),
        *(
            service(name, "resource_service", port, **resource_service_env(settings))
            for name, port in resource_replicas(settings).items()
        ),
        service(
            "resource-processor",
            "resource_processor",
            settings.processor_port,
            RABBITMQ_URL=settings.rabbitmq_url,
            RESOURCE_SERVICE_URL=url(settings.resource_port),
            SONG_SERVICE_URL=url(settings.song_port),
        ),
        Program(GATEWAY, gateway.command(settings.dir / GATEWAY), settings.gateway_port, "", {}),
    ]


def resource_replicas(settings: RunSettings) -> dict[str, int]:
    """Each Resource Service replica's name and port: `resource-service`, then
    `resource-service-2` and on with `make run REPLICAS=2`."""
    replicas = {"resource-service": settings.resource_port}
    for n in range(2, settings.replicas + 1):
        replicas[f"resource-service-{n}"] = settings.resource_replica_port + n - 2
    return replicas


def resource_service_env(settings: RunSettings) -> dict[str, str]:
    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    return {
        "DATABASE_URL": service_database_url(settings, "resource"),
        "RABBITMQ_URL": settings.rabbitmq_url,
        "S3_ENDPOINT_URL": url(settings.s3_port),
        "STORAGE_SERVICE_URL": url(settings.storage_port),
        "SONG_SERVICE_URL": url(settings.song_port),
        "ADMIN_TOKEN": admin_token(settings),
    }


def gateway_settings(settings: RunSettings) -> gateway.GatewaySettings:
    """The gateway's body limits are the Resource Service's own, read from the same
    environment the run hands the services (MAX_UPLOAD_BYTES, MAX_JSON_BYTES)."""
    limits = ResourceServiceSettings()
    return gateway.on_loopback(
        settings.gateway_port,
        resource_replicas(settings).values(),
        settings.song_port,
        upload_bytes=limits.max_upload_bytes,
        json_bytes=limits.max_json_bytes,
    )


@dataclass(frozen=True)
class Health:
    status: str  # UP | DEGRADED | DOWN
    body: dict[str, Any]


def health(program: Program, timeout: float = 1.0) -> Health:
    """What the program's health endpoint says now; DOWN when nothing answers in time."""
    if not program.health_path:  # PostgreSQL, RabbitMQ, the gateway: asked in their protocol
        return Health("UP" if servers.ready(program.name, program.port) else "DOWN", {})
    try:
        with urllib.request.urlopen(f"{program.url}{program.health_path}", timeout=timeout) as r:
            body = json.load(r)
    except urllib.error.HTTPError as exc:  # 503 DOWN still has a body worth reading
        try:
            body = json.load(exc)
        except ValueError:
            body = {}
    except (OSError, ValueError):
        return Health("DOWN", {})
    if program.name == LOCALSTACK:  # its init report: up once the bucket hooks succeeded
        return Health("UP" if localstack.hooks_done(body) else "DOWN", body)
    return Health(str(body.get("status", "DOWN")), body)
