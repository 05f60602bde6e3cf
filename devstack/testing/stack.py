"""The whole platform as real processes, each on its own port, database and RabbitMQ vhost.

End-to-end and fault tests, the demo and the benchmarks start one, act on it as a user would,
and kill or freeze parts of it.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from sqlalchemy import Engine, create_engine, func, select

from devstack import gateway
from devstack.testing.processes import ServiceProcess
from resource_service.config import Settings as ResourceSettings
from resource_service.models import Resource

T = TypeVar("T")


@dataclass
class Gateway:
    """nginx in front of a stack, configured as `make run` configures it (devstack.gateway)."""

    prefix: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, resource: ServiceProcess, song: ServiceProcess) -> None:
        gateway.ensure_installed()
        # The body limits are the Resource Service's own, as this stack configured it.
        defaults = ResourceSettings.model_fields
        upload = resource.env.get("MAX_UPLOAD_BYTES", defaults["max_upload_bytes"].default)
        json_limit = resource.env.get("MAX_JSON_BYTES", defaults["max_json_bytes"].default)
        settings = gateway.on_loopback(
            self.port, [resource.port], song.port, int(upload), int(json_limit)
        )
        gateway.write(settings, self.prefix)
        log = (self.prefix / "gateway.log").open("ab")
        self.process = subprocess.Popen(gateway.command(self.prefix), stdout=log, stderr=log)
        wait_until(self._answers, 15, "the gateway answering")

    def _answers(self) -> bool:
        try:
            return httpx2.get(f"{self.url}/gateway/health", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def access_log(self) -> list[dict[str, str]]:
        """Every request the gateway served, as its JSON access log wrote it."""
        lines = (self.prefix / "gateway.log").read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


@dataclass
class Stack:
    storage: ServiceProcess
    song: ServiceProcess
    resource: ServiceProcess
    processors: list[ServiceProcess]
    resource_database_url: str
    rabbitmq_url: str
    log_dir: Path
    # This stack's own folder in the shared buckets ("staging/<folder>/", "permanent/<folder>/"),
    # so that what one stack stores is told apart from what another stores in the same S3.
    folder: str
    # The Resource and Storage Services' ADMIN_TOKEN: `admin_headers` carry it to `/admin/...` and
    # to the writes of `/storages`.
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    http: httpx2.Client = field(default_factory=lambda: httpx2.Client(timeout=30))
    # The front door, when the stack has one: `upload` and `song_of` then go through it.
    gateway: Gateway | None = None
    _resource_db: Engine | None = None

    @property
    def staging_prefix(self) -> str:
        return f"staging/{self.folder}/"

    @property
    def permanent_prefix(self) -> str:
        return f"permanent/{self.folder}/"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.storage, self.song, self.resource, *self.processors]

    def start(self) -> Stack:
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_healthy(timeout=60)
            if self.gateway is not None:
                self.gateway.start(self.resource, self.song)
        except BaseException:  # a service that never came up, or Ctrl-C: leave nothing running
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for service in reversed(self.services):
            service.stop()
        self.http.close()
        if self._resource_db is not None:
            self._resource_db.dispose()

    def logs(self) -> str:
        """Every service's log, for the message of a failing assertion."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def logged(self, log_name: str, event: str, **fields: object) -> int:
        """How many times `<log_name>.log` has the event with these fields (JSON log lines)."""
        return sum(
            all(record.get(k) == v for k, v in fields.items())
            for record in self.log_records(f"{log_name}.log", event)
        )

    def log_records(self, log_glob: str, event: str) -> Iterator[dict[str, Any]]:
        """The JSON log lines of `event` in the logs named by `log_glob` (`processor*.log`)."""
        for path in sorted(self.log_dir.glob(log_glob)):
            for line in path.read_text(errors="replace").splitlines():
                if f'"{event}"' in line and (record := json.loads(line)).get("event") == event:
                    yield record

    def upload(self, data: bytes) -> httpx2.Response:
        door = self.gateway.url if self.gateway else self.resource.url
        return self.http.post(
            f"{door}/resources", content=data, headers={"Content-Type": "audio/mpeg"}
        )

    def song_of(self, resource_id: int) -> httpx2.Response:
        door = self.gateway.url if self.gateway else self.song.url
        return self.http.get(f"{door}/songs/{resource_id}")

    def resource_row(self, resource_id: int) -> Any:
        """The Resource Service's row as stored (state, bucket, key, ...), or None."""
        with self._resource_database().connect() as conn:
            return conn.execute(select(Resource).where(Resource.id == resource_id)).first()

    def resource_rows(self) -> int:
        """How many resource rows are stored."""
        with self._resource_database().connect() as conn:
            return conn.execute(select(func.count()).select_from(Resource)).scalar_one()

    def _resource_database(self) -> Engine:
        if self._resource_db is None:
            self._resource_db = create_engine(self.resource_database_url)
        return self._resource_db

    def wait_permanent(self, resource_id: int, timeout: float = 5.0) -> Any:
        def permanent() -> Any:
            row = self.resource_row(resource_id)
            return row if row is not None and row.state == "PERMANENT" else None

        return wait_until(
            permanent, timeout, lambda: f"resource {resource_id} PERMANENT\n{self.logs()}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _on_free_port(package: str, log_path: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(package, free_port(), env, log_path)


def start_stack(
    new_database_url: Callable[[str], str],
    rabbitmq_url: str,
    s3_endpoint_url: str,
    log_dir: Path,
    processors: int = 1,
    processor_env: dict[str, str] | None = None,
    resource_database_url: str | None = None,
    resource_env: dict[str, str] | None = None,
    common_env: dict[str, str] | None = None,
    with_gateway: bool = False,
) -> Stack:
    """Start every service on a free port; `new_database_url(name)` names each one's database.
    `resource_env` and `processor_env` add to or override those services' environment (a fault
    test routes a connection through its proxy that way); `common_env` goes to every service.
    `with_gateway`: nginx in front, as under `make run` (the demo goes through it)."""
    resource_db = resource_database_url or new_database_url("resource")
    common = common_env or {}
    s3 = {"S3_ENDPOINT_URL": s3_endpoint_url, **common}
    folder = uuid.uuid4().hex[:8]
    storage = _on_free_port(
        "storage_service",
        log_dir / "storage.log",
        **s3,
        DATABASE_URL=new_database_url("storage"),
        ADMIN_TOKEN=(admin_token := secrets.token_urlsafe(24)),
        SEED_STAGING_PATH=f"/staging/{folder}/",
        SEED_PERMANENT_PATH=f"/permanent/{folder}/",
    )
    song_db = new_database_url("song")
    song = _on_free_port("song_service", log_dir / "song.log", **common, DATABASE_URL=song_db)
    resource_defaults = {
        **s3,
        "ADMIN_TOKEN": admin_token,
        "DATABASE_URL": resource_db,
        "RABBITMQ_URL": rabbitmq_url,
        "STORAGE_SERVICE_URL": storage.url,
        "SONG_SERVICE_URL": song.url,
    }
    resource_env = {**resource_defaults, **(resource_env or {})}
    resource = _on_free_port("resource_service", log_dir / "resource.log", **resource_env)
    peers = {"RESOURCE_SERVICE_URL": resource.url, "SONG_SERVICE_URL": song.url}
    processor_env = {"RABBITMQ_URL": rabbitmq_url, **peers, **common, **(processor_env or {})}
    workers = [
        _on_free_port("resource_processor", log_dir / f"processor{i}.log", **processor_env)
        for i in range(processors)
    ]
    door = Gateway(log_dir / "gateway", free_port()) if with_gateway else None
    parts = (storage, song, resource, workers, resource_db, rabbitmq_url, log_dir, folder)
    return Stack(*parts, admin_token, gateway=door).start()


def wait_until(
    condition: Callable[[], T | None], timeout: float, message: str | Callable[[], str] = ""
) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout` seconds.

    `message` may be a callable, so that an expensive one (all the logs) is built only on failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            described = message() if callable(message) else message
            raise AssertionError(f"not true within {timeout} s: {described}")
        time.sleep(0.05)
