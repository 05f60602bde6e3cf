from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from service_kit.db import ping, prepare_database
from service_kit.web import create_service_app, sync_check
from song_service.config import Settings
from song_service.routes import router

log = structlog.get_logger(__name__)
ALEMBIC_DIR = Path(__file__).parent / "alembic"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR)
        app.state.session_factory = sessionmaker(engine, expire_on_commit=False)
        app.state.health_checks = {"database": sync_check(partial(ping, engine))}
        log.info("service_started", port=settings.port)
        yield
        engine.dispose()

    return create_service_app("Song Service", lifespan, [router])
