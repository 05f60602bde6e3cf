"""Fresh databases and RabbitMQ vhosts for one run of the tests, the demo or the benchmarks, on
the servers this machine runs, all removed at the end.

Each database gets a role of its own that owns it and nothing else (least privilege: a service
cannot read another's database), and the URL a service gets logs in as that role. A vhost is
created at once (the contract fixes the queue names, so a vhost is what keeps one stack's queues
apart from another's).
"""

from __future__ import annotations

import secrets
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"  # a server, no database
LOCAL_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


def provision_database(
    server_url: str, database: str, role: str, password: str | None = None
) -> str:
    """Make `role` (a login, nothing more) the owner of `database`, creating either when missing,
    and take PUBLIC's right to connect; the database's URL as that role.

    `server_url` must be an administrator's. A database that exists already keeps its data; its
    tables change owner to the role. With a password, the role's is set to it.
    """
    admin = make_url(f"{server_url.rstrip('/')}/postgres").set(drivername="postgresql")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        name, quoted = sql.Literal(role), sql.Identifier(role)
        if not conn.execute(
            sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = {}").format(name)
        ).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(quoted))
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(quoted, sql.Literal(password)))
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        target = sql.Identifier(database)
        if found:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(target, quoted))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(target, quoted))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target))
    if found:
        _hand_over_tables(admin.set(database=database), role)
    url = make_url(f"{server_url.rstrip('/')}/{database}")
    return url.set(username=role, password=password).render_as_string(hide_password=False)


def _hand_over_tables(database_url: Any, role: str) -> None:
    """A database made before roles (tables owned by the administrator): the role gets them.
    Tables and views only: a serial column's sequence follows its table."""
    with psycopg.connect(
        database_url.render_as_string(hide_password=False), autocommit=True
    ) as conn:
        tables = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'p')"
            " AND pg_get_userbyid(c.relowner) <> %s",
            (role,),
        ).fetchall()
        for (table,) in tables:
            conn.execute(
                sql.SQL("ALTER TABLE {} OWNER TO {}").format(
                    sql.Identifier(table), sql.Identifier(role)
                )
            )


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
    roles: list[str] = field(default_factory=list)
    vhosts: list[str] = field(default_factory=list)

    def database_url(self, name: str) -> str:
        """A new, empty database owned by a new role of the same name; its URL, as that role."""
        database = f"{self.prefix}_{name}_{self.token}_{len(self.databases)}"
        self.databases.append(database)  # first: an interrupted provision may still have added it
        self.roles.append(database)
        password = secrets.token_urlsafe(18)  # a server with password auth needs one
        return provision_database(self.postgres_url, database, role=database, password=password)

    def vhost(self, name: str) -> tuple[str, str]:
        """A new vhost that guest may use: its name and its AMQP URL."""
        vhost = f"{self.prefix}_{name}_{self.token}_{len(self.vhosts)}"
        self.vhosts.append(vhost)  # first: an interrupted add_vhost may still have added it
        self.rabbitmqctl("add_vhost", vhost)
        self.rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        return vhost, f"{self.rabbitmq_url.rstrip('/')}/{vhost}"

    def close(self) -> list[str]:
        """Remove everything, going on past a step that fails; says what it did."""
        admin = make_url(f"{self.postgres_url}/postgres").set(drivername="postgresql")

        def run_sql(statement: str) -> None:
            with psycopg.connect(admin.render_as_string(hide_password=False)) as conn:
                conn.autocommit = True
                conn.execute(statement)

        steps: list[tuple[str, Callable[[], object]]] = [
            *(
                (
                    f"dropped database {d}",
                    partial(run_sql, f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)'),
                )
                for d in self.databases
            ),
            # after the databases they own
            *(
                (f"dropped role {r}", partial(run_sql, f'DROP ROLE IF EXISTS "{r}"'))
                for r in self.roles
            ),
            *(
                (f"deleted vhost {v}", partial(self.rabbitmqctl, "delete_vhost", v))
                for v in self.vhosts
            ),
        ]
        done = []
        for description, step in steps:
            try:
                step()
                done.append(description)
            except Exception as exc:
                done.append(f"FAILED: {description.split(' ', 1)[1]}: {exc!r}")
        self.databases.clear()
        self.roles.clear()
        self.vhosts.clear()
        return done

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
