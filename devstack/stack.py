"""The whole platform as real processes, each on its own port, database and RabbitMQ vhost.

End-to-end and fault tests, the demo and the benchmarks start one, act on it as a user would,
and kill or freeze parts of it.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from botocore.exceptions import ClientError
from sqlalchemy import Engine, create_engine, select

from devstack.processes import ServiceProcess
from resource_service.models import Resource


@dataclass
class Stack:
    storage: ServiceProcess
    song: ServiceProcess
    resource: ServiceProcess
    processors: list[ServiceProcess]
    resource_database_url: str
    rabbitmq_url: str
    log_dir: Path
    # This stack's own folders in the shared buckets ("staging/<id>/", "permanent/<id>/"), so
    # that what one stack stores is told apart from what another stores in the same S3.
    staging_prefix: str
    permanent_prefix: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    _resource_db: Engine | None = None

    @property
    def services(self) -> list[ServiceProcess]:
        return [self.storage, self.song, self.resource, *self.processors]

    def start(self) -> Stack:
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_healthy(timeout=60)
        except BaseException:  # a service that never came up, or Ctrl-C: leave nothing running
            self.stop()
            raise
        return self

    def stop(self) -> None:
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

    def upload(self, data: bytes) -> httpx.Response:
        return self.http.post(
            f"{self.resource.url}/resources", content=data, headers={"Content-Type": "audio/mpeg"}
        )

    def song_of(self, resource_id: int) -> httpx.Response:
        return self.http.get(f"{self.song.url}/songs/{resource_id}")

    def resource_row(self, resource_id: int):
        """The Resource Service's row as stored (state, bucket, key, ...), or None."""
        if self._resource_db is None:
            self._resource_db = create_engine(self.resource_database_url)
        with self._resource_db.connect() as conn:
            return conn.execute(select(Resource).where(Resource.id == resource_id)).first()

    def wait_permanent(self, resource_id: int, timeout: float = 5.0):
        def permanent():
            row = self.resource_row(resource_id)
            return row if row is not None and row.state == "PERMANENT" else None

        return wait_until(
            permanent, timeout, lambda: f"resource {resource_id} PERMANENT\n{self.logs()}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_stack(
    new_database_url: Callable[[str], str],
    rabbitmq_url: str,
    s3_endpoint_url: str,
    log_dir: Path,
    processors: int = 1,
    processor_env: dict[str, str] | None = None,
    resource_database_url: str | None = None,
    **resource_env: str,
) -> Stack:
    """Start every service on a free port; `new_database_url(name)` names each one's database.

    `resource_env` and `processor_env` add to or override those services' environment (a fault
    test routes a connection through its proxy that way).
    """
    resource_db = resource_database_url or new_database_url("resource")
    s3 = {"S3_ENDPOINT_URL": s3_endpoint_url}
    folder = uuid.uuid4().hex[:8]
    storage = ServiceProcess(
        "storage_service",
        free_port(),
        {
            **s3,
            "DATABASE_URL": new_database_url("storage"),
            "SEED_STAGING_PATH": f"/staging/{folder}/",
            "SEED_PERMANENT_PATH": f"/permanent/{folder}/",
        },
        log_dir / "storage.log",
    )
    song = ServiceProcess(
        "song_service",
        free_port(),
        {"DATABASE_URL": new_database_url("song")},
        log_dir / "song.log",
    )
    resource = ServiceProcess(
        "resource_service",
        free_port(),
        {
            **s3,
            "DATABASE_URL": resource_db,
            "RABBITMQ_URL": rabbitmq_url,
            "STORAGE_SERVICE_URL": storage.url,
            "SONG_SERVICE_URL": song.url,
            **resource_env,
        },
        log_dir / "resource.log",
    )
    workers = [
        ServiceProcess(
            "resource_processor",
            free_port(),
            {
                "RABBITMQ_URL": rabbitmq_url,
                "RESOURCE_SERVICE_URL": resource.url,
                "SONG_SERVICE_URL": song.url,
                **(processor_env or {}),
            },
            log_dir / f"processor{i}.log",
        )
        for i in range(processors)
    ]
    return Stack(
        storage,
        song,
        resource,
        workers,
        resource_db,
        rabbitmq_url,
        log_dir,
        staging_prefix=f"staging/{folder}/",
        permanent_prefix=f"permanent/{folder}/",
    ).start()


def wait_until(
    condition: Callable[[], object], timeout: float, message: str | Callable[[], str] = ""
) -> object:
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


def object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError:
        return False
