"""Least privilege where the tests and `make run` create databases: each service logs in as a
role of its own that owns its database and nothing else, and cannot even connect to another's."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from devstack.runner.services import RunSettings, provision_databases, service_database_url
from devstack.testing.processes import ServiceProcess
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack
from tests.infra import Infrastructure


def conninfo(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def current_user(connection: psycopg.Connection[tuple[Any, ...]]) -> str:
    row = connection.execute("SELECT current_user").fetchone()
    assert row is not None
    return str(row[0])


def database_of(service: ServiceProcess) -> str:
    return str(service.env["DATABASE_URL"])


def test_a_service_role_cannot_connect_to_another_services_database(stack: Stack) -> None:
    storage, song = database_of(stack.storage), database_of(stack.song)
    with psycopg.connect(conninfo(storage)) as own:
        role = current_user(own)
        rights = own.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone()
    assert rights == (False, False, False)
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(conninfo(storage, database=make_url(song).database))


def test_make_run_gives_each_service_a_role_of_its_own(infra: Infrastructure) -> None:
    sandbox = Sandbox("privilege", infra.postgres_url, infra.rabbitmq_url, infra.rabbitmqctl)
    settings = RunSettings(postgres_url=infra.postgres_url, database_prefix=f"{sandbox.token}_")
    names = ("storage", "song", "resource")
    sandbox.databases.extend(f"{settings.database_prefix}{n}_db" for n in names)
    sandbox.roles.extend(f"{settings.database_prefix}{n}_service" for n in names)
    with sandbox:
        provision_databases(settings)
        provision_databases(settings)  # a second `make run` finds them made: no error
        song_db = make_url(service_database_url(settings, "song")).database
        storage_url = service_database_url(settings, "storage")
        with psycopg.connect(conninfo(storage_url)) as own:
            assert current_user(own).endswith("storage_service")
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(conninfo(storage_url, database=song_db))
