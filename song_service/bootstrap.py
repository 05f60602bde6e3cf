"""The Song Service's composition root: the database, migrated, and its health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from service_kit.db import Database, prepare_database
from service_kit.web import HealthCheck, sync_check
from song_service.config import Settings

ALEMBIC_DIR = Path(__file__).parent / "alembic"


@dataclass(frozen=True)
class Parts:
    database: Database
    health_checks: dict[str, HealthCheck]


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Parts]:
    database = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR)
    try:
        check = sync_check(database.ping, threads=database.threads)
        yield Parts(database=database, health_checks={"database": check})
    finally:
        database.close()
