"""The Song Service's composition root: the database, migrated, and its health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service_kit.db import ping, prepare_database
from service_kit.web import HealthCheck, sync_check
from song_service.config import Settings

ALEMBIC_DIR = Path(__file__).parent / "alembic"


@dataclass(frozen=True)
class Parts:
    session_factory: sessionmaker[Session]
    health_checks: dict[str, HealthCheck]


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Parts]:
    engine = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR)
    try:
        yield Parts(
            session_factory=sessionmaker(engine, expire_on_commit=False),
            health_checks={"database": sync_check(partial(ping, engine))},
        )
    finally:
        engine.dispose()
