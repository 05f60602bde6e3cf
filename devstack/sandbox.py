"""Fresh databases and RabbitMQ vhosts for one run of the tests, the demo or the benchmarks, on
the servers this machine runs, all removed at the end.

The services create their own database on start, so a database here is only a name until a
service uses it; a vhost is created at once (the contract fixes the queue names, so a vhost is
what keeps one stack's queues apart from another's).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from sqlalchemy.engine import make_url

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"  # a server, no database
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def local_rabbitmqctl(*args: str) -> str:
    """Run `rabbitmqctl -q ARGS` on this machine's broker; its output."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout


@dataclass
class Sandbox:
    prefix: str  # "test", "demo", "bench": what a leftover belongs to
    postgres_url: str = LOCAL_POSTGRES
    rabbitmq_url: str = LOCAL_RABBITMQ
    rabbitmqctl: Callable[..., str] = local_rabbitmqctl  # runs `rabbitmqctl ARGS` at the broker
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    databases: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)

    def database_url(self, name: str) -> str:
        database = f"{self.prefix}_{name}_{self.token}_{len(self.databases)}"
        self.databases.append(database)
        return f"{self.postgres_url}/{database}"

    def vhost(self, name: str) -> tuple[str, str]:
        """A new vhost that guest may use: its name and its AMQP URL."""
        vhost = f"{self.prefix}_{name}_{self.token}_{len(self.vhosts)}"
        self.vhosts.append(vhost)  # first: an interrupted add_vhost may still have added it
        self.rabbitmqctl("add_vhost", vhost)
        self.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost, f"{self.rabbitmq_url.rstrip('/')}/{vhost}"

    def close(self) -> list[str]:
        """Remove everything, going on past a step that fails; says what it did."""
        done = []
        admin = make_url(f"{self.postgres_url}/postgres").set(drivername="postgresql")
        for database in self.databases:
            try:
                with psycopg.connect(admin.render_as_string(hide_password=False)) as conn:
                    conn.autocommit = True
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                done.append(f"dropped database {database}")
            except Exception as exc:
                done.append(f"FAILED to drop database {database}: {exc!r}")
        for vhost in self.vhosts:
            try:
                self.rabbitmqctl("delete_vhost", vhost)
                done.append(f"deleted vhost {vhost}")
            except Exception as exc:
                done.append(f"FAILED to delete vhost {vhost}: {exc!r}")
        self.databases.clear()
        self.vhosts.clear()
        return done

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
