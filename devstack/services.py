"""What `make run` runs: each service's compose name, package, port and environment.

The defaults are the contract's addresses (DESIGN §6). Every one can be changed with a `RUN_*`
variable, so that a test drives the real `make run` on ports, databases and a vhost of its own
without touching what a person runs on this machine.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack import localstack
from devstack.sandbox import LOCAL_POSTGRES, LOCAL_RABBITMQ

REPO = Path(__file__).resolve().parent.parent
LOCALSTACK = "localstack"


class RunSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUN_", extra="ignore")

    dir: Path = REPO / ".run"  # supervisord's socket, config and log, and the services' logs
    restart: Literal["no", "on-failure"] = "no"  # `make run RESTART=on-failure`
    resource_port: int = 8080
    song_port: int = 8081
    storage_port: int = 8082
    processor_port: int = 8083
    s3_port: int = localstack.DEFAULT_PORT
    postgres_url: str = LOCAL_POSTGRES  # a server; each service gets `<prefix><service>_db`
    database_prefix: str = ""
    rabbitmq_url: str = LOCAL_RABBITMQ


@dataclass(frozen=True)
class Program:
    """One process `make run` supervises, under the name compose gives it."""

    name: str
    command: list[str]
    port: int
    health_path: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def programs(settings: RunSettings) -> list[Program]:
    """LocalStack first, then the services in the order they depend on each other."""

    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def database(name: str) -> str:
        return f"{settings.postgres_url.rstrip('/')}/{settings.database_prefix}{name}_db"

    s3 = url(settings.s3_port)

    def service(name: str, package: str, port: int, **env: str) -> Program:
        command = [sys.executable, "-m", package]
        return Program(name, command, port, "/health", {"PORT": str(port), **env})

    return [
        Program(
            LOCALSTACK,
            [sys.executable, "-m", "devstack.localstack", "serve", "--port", str(settings.s3_port)],
            settings.s3_port,
            "/_localstack/init",
            {},
        ),
        service(
            "storage-service",
            "storage_service",
            settings.storage_port,
            DATABASE_URL=database("storage"),
            S3_ENDPOINT_URL=s3,
        ),
        service("song-service", "song_service", settings.song_port, DATABASE_URL=database("song")),
        service(
            "resource-service",
            "resource_service",
            settings.resource_port,
            DATABASE_URL=database("resource"),
            RABBITMQ_URL=settings.rabbitmq_url,
            S3_ENDPOINT_URL=s3,
            STORAGE_SERVICE_URL=url(settings.storage_port),
            SONG_SERVICE_URL=url(settings.song_port),
        ),
        service(
            "resource-processor",
            "resource_processor",
            settings.processor_port,
            RABBITMQ_URL=settings.rabbitmq_url,
            RESOURCE_SERVICE_URL=url(settings.resource_port),
            SONG_SERVICE_URL=url(settings.song_port),
        ),
    ]


@dataclass(frozen=True)
class Health:
    status: str  # UP | DEGRADED | DOWN
    body: dict


def health(program: Program, timeout: float = 1.0) -> Health:
    """What the program's health endpoint says now; DOWN when nothing answers in time."""
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
