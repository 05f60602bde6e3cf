"""The Storage Service's composition root: the database, migrated and seeded, the S3 client,
the seeded locations' buckets, and the health checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from service_kit.db import Database, prepare_database
from service_kit.s3 import S3Client, make_s3_client
from service_kit.web import HealthCheck, sync_check
from storage_service.config import Settings
from storage_service.handlers import LocationRules, ensure_location_buckets
from storage_service.repository import seed_storages

ALEMBIC_DIR = Path(__file__).parent / "alembic"


@dataclass(frozen=True)
class Parts:
    database: Database
    s3: S3Client
    location_rules: LocationRules
    health_checks: dict[str, HealthCheck]


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Parts]:
    seeds = [
        ("STAGING", settings.seed_staging_bucket, settings.seed_staging_path),
        ("PERMANENT", settings.seed_permanent_bucket, settings.seed_permanent_path),
    ]
    seed = partial(seed_storages, seeds=seeds)
    database = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR, seed)
    try:
        s3 = make_s3_client(settings)
        await asyncio.to_thread(ensure_location_buckets, s3, database.session_factory)
        checks = {
            "database": sync_check(database.ping, threads=database.threads),
            "s3": sync_check(s3.list_buckets),
        }
        rules = LocationRules(settings.usable_buckets, settings.max_storages)
        yield Parts(database, s3, rules, checks)
    finally:
        database.close()
