from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import structlog
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker
from tenacity import retry, stop_after_delay, wait_exponential

from service_kit.db import ping, prepare_database
from service_kit.s3 import ensure_bucket, make_s3_client
from service_kit.web import create_service_app, sync_check
from storage_service.config import Settings
from storage_service.repository import list_storages, seed_storages
from storage_service.routes import router

log = structlog.get_logger(__name__)
ALEMBIC_DIR = Path(__file__).parent / "alembic"


@retry(stop=stop_after_delay(30), wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
def ensure_location_buckets(s3, session_factory) -> None:
    """Every registered location's bucket exists (the seeded ones included)."""
    with session_factory() as session:
        buckets = {s.bucket for s in list_storages(session)}
    for bucket in sorted(buckets):
        if ensure_bucket(s3, bucket):
            log.info("bucket_created", bucket=bucket)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    seeds = [
        ("STAGING", settings.seed_staging_bucket, settings.seed_staging_path),
        ("PERMANENT", settings.seed_permanent_bucket, settings.seed_permanent_path),
    ]

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        seed = partial(seed_storages, seeds=seeds)
        engine = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR, seed)
        session_factory = sessionmaker(engine, expire_on_commit=False)
        s3 = make_s3_client(settings)
        await asyncio.to_thread(ensure_location_buckets, s3, session_factory)
        app.state.session_factory = session_factory
        app.state.s3 = s3
        app.state.health_checks = {
            "database": sync_check(partial(ping, engine)),
            "s3": sync_check(s3.list_buckets),
        }
        log.info("service_started", port=settings.port)
        yield
        engine.dispose()

    return create_service_app("Storage Service", lifespan, [router])
