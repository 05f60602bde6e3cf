"""Database plumbing shared by the services: create the database, migrate, seed, once at start.

The prestart order follows full-stack-fastapi-template: wait for the database, migrate, seed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import sqlalchemy
import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry_if_exception_type

from service_kit.config import DatabaseSettings
from service_kit.retries import retry_at_startup
from service_kit.threads import run_in

log = structlog.get_logger(__name__)

# One arbitrary number: every replica of every service takes this lock while migrating and
# seeding, so replicas that start at once run those steps one after another.
_PRESTART_LOCK_ID = 7_412_001


def make_engine(database_url: str, timeout_seconds: float = 5.0, pool_size: int = 10) -> Engine:
    # By the module's attribute: tracing wraps it (service_kit.tracing) after this module loads.
    return sqlalchemy.create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=0,  # one connection per database thread (`Database`) is enough
        pool_timeout=timeout_seconds,
        connect_args={
            "connect_timeout": max(1, int(timeout_seconds)),
            # A statement that waits longer than this is a fault, not a slow query.
            "options": f"-c statement_timeout={int(timeout_seconds * 1000)}",
            # A peer that stops acknowledging (a host gone, a black hole) ends the connection
            # instead of leaving its thread waiting for ever (libpq's TCP settings).
            "keepalives": 1,
            "keepalives_idle": max(1, int(timeout_seconds)),
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": int(timeout_seconds * 1000),
        },
    )


class DatabaseTimeout(Exception):
    """A database call had no answer within the deadline: the database is down or frozen."""


T = TypeVar("T")
P = ParamSpec("P")


class Database:
    """Where a service's database work runs: a thread pool of its own, bounded, so a database
    that hangs holds these threads and no others; and a client-side deadline on every call, so
    a frozen server (SIGSTOP, a black hole) costs a caller `timeout_seconds`, never a hang.

    The server-side statement timeout cannot help there: a stopped server enforces nothing, and
    its kernel keeps acknowledging, so neither do TCP's timeouts. A call that timed out may
    still finish later in its thread: for a write, a 503 means "outcome unknown".
    """

    def __init__(self, engine: Engine, threads: int, timeout_seconds: float) -> None:
        self.engine = engine
        self.session_factory = sessionmaker(engine, expire_on_commit=False)
        self.threads = ThreadPoolExecutor(threads, thread_name_prefix="database")
        self.timeout_seconds = timeout_seconds

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` on a database thread, within the deadline (queueing included)."""
        work = run_in(self.threads, fn, *args, **kwargs)
        try:
            return await asyncio.wait_for(work, self.timeout_seconds)
        except TimeoutError:
            raise DatabaseTimeout(f"no answer within {self.timeout_seconds:g} s") from None

    async def run(
        self, operation: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`operation(session, *args)` in a session of its own, within the deadline."""

        def in_session() -> T:
            with self.session_factory() as session:
                return operation(session, *args, **kwargs)

        return await self.call(in_session)

    def ping(self) -> None:
        ping(self.engine)

    def close(self) -> None:
        self.threads.shutdown(wait=False, cancel_futures=True)
        self.engine.dispose()


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
) -> Database:
    """Create, migrate and seed the service's database; the `Database` its work runs on."""
    ensure_database(settings.database_url)
    timeout = settings.database_timeout_seconds
    engine = make_engine(settings.database_url, timeout, settings.database_threads)
    migrate_and_seed(engine, alembic_dir, seed)
    return Database(engine, settings.database_threads, timeout)


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
