"""Database plumbing shared by the services: create the database, migrate, seed, once at start.

The prestart order follows full-stack-fastapi-template: wait for the database, migrate, seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from tenacity import retry_if_exception_type

from service_kit.config import DatabaseSettings
from service_kit.retries import retry_at_startup

log = structlog.get_logger(__name__)

# One arbitrary number: every replica of every service takes this lock while migrating and
# seeding, so replicas that start at once run those steps one after another.
_PRESTART_LOCK_ID = 7_412_001


def make_engine(database_url: str, timeout_seconds: float = 5.0) -> Engine:
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=timeout_seconds,
        connect_args={
            "connect_timeout": max(1, int(timeout_seconds)),
            # A statement that waits longer than this is a fault, not a slow query.
            "options": f"-c statement_timeout={int(timeout_seconds * 1000)}",
        },
    )


@retry_at_startup(retry_if_exception_type(psycopg.OperationalError))
def ensure_database(database_url: str) -> None:
    """Create the service's database if it is missing (safe when replicas race to create it)."""
    url = make_url(database_url)
    admin_url = url.set(drivername="postgresql", database="postgres")
    conninfo = admin_url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        if exists.fetchone():
            return
        try:
            conn.execute(f'CREATE DATABASE "{url.database}"')
            log.info("database_created", database=url.database)
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            pass  # another replica created it between our check and our CREATE


def migrate_and_seed(
    engine: Engine, alembic_dir: Path, seed: Callable[[Connection], None] | None = None
) -> None:
    """Bring the schema to head and run the seed, in one transaction, under one advisory lock."""
    config = Config()
    config.set_main_option("script_location", str(alembic_dir))
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PRESTART_LOCK_ID})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if seed is not None:
            seed(conn)


def prepare_database(
    settings: DatabaseSettings,
    alembic_dir: Path,
    seed: Callable[[Connection], None] | None = None,
) -> Engine:
    ensure_database(settings.database_url)
    engine = make_engine(settings.database_url, settings.database_timeout_seconds)
    migrate_and_seed(engine, alembic_dir, seed)
    return engine


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def delete_by_ids(
    session: Session, model: type[Any], ids: list[int], commit: bool = True
) -> list[Any]:
    """Delete the rows of `model` with these ids; the deleted rows, in `ids` order. Commits
    unless told not to (the caller adds to the same transaction)."""
    statement = delete(model).where(model.id.in_(ids)).returning(model)
    deleted = {row.id: row for row in session.scalars(statement)}
    if commit:
        session.commit()
    return [deleted[i] for i in ids if i in deleted]
