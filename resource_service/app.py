from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from resource_service import handlers, repository
from resource_service.broker import Broker
from resource_service.config import Settings
from resource_service.object_store import ObjectStore
from resource_service.outbox import OutboxRelay
from resource_service.routes import router
from resource_service.song_client import SongClient
from resource_service.storage_client import STORAGE_LIST, StorageClient
from resource_service.storage_lookup import StorageLookup
from service_kit.db import ping, prepare_database
from service_kit.messaging import RESOURCE_PROCESSED, message_handler
from service_kit.resilience import CircuitBreaker
from service_kit.resilience.admin import breaker_admin_router, breaker_health
from service_kit.s3 import make_s3_client
from service_kit.web import create_service_app, sync_check

log = structlog.get_logger(__name__)
ALEMBIC_DIR = Path(__file__).parent / "alembic"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Built here, not in the lifespan: the stub is checked before anything starts, and the
    # admin routes need the breaker.
    stub = STORAGE_LIST.validate_json(settings.storage_stub_json)
    storage_breaker = CircuitBreaker("storage", settings.storage_breaker)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR)
        session_factory = sessionmaker(engine, expire_on_commit=False)
        s3 = make_s3_client(settings)
        storage_http = httpx.AsyncClient(
            base_url=settings.storage_service_url, timeout=settings.storage_timeout_seconds
        )
        song_http = httpx.AsyncClient(
            base_url=settings.song_service_url, timeout=settings.song_timeout_seconds
        )

        async def on_processed(event):
            await handlers.move_to_permanent(dependencies, event)

        broker = Broker(
            settings.rabbitmq_url,
            settings.prefetch_count,
            message_handler(RESOURCE_PROCESSED, on_processed),
        )
        relay = OutboxRelay(
            session_factory, broker, settings.outbox_poll_seconds, settings.outbox_claim_seconds
        )
        dependencies = handlers.Dependencies(
            session_factory=session_factory,
            objects=ObjectStore(s3, settings.upload_part_bytes),
            storage=StorageLookup(
                StorageClient(storage_http),
                storage_breaker,
                stub,
                settings.storage_last_good_max_age_seconds,
            ),
            songs=SongClient(song_http),
            relay=relay,
            max_upload_bytes=settings.max_upload_bytes,
            upload_idle_seconds=settings.upload_idle_seconds,
        )

        async def broker_health() -> dict:
            pending = await dependencies.run_in_session(repository.count_pending_outbox)
            # Uploads go on while the broker is away (the outbox keeps their events).
            status = "UP" if broker.is_up else "DEGRADED"
            return {"status": status, "pendingEvents": pending}

        app.state.dependencies = dependencies
        app.state.health_checks = {
            "database": sync_check(partial(ping, engine)),
            "s3": sync_check(s3.list_buckets),
            "broker": broker_health,
            "storageBreaker": breaker_health(storage_breaker),
        }
        broker.start()
        relay.start()
        log.info("service_started", port=settings.port)
        yield
        await relay.stop()
        await broker.close()
        await storage_http.aclose()
        await song_http.aclose()
        engine.dispose()

    app = create_service_app(
        "Resource Service", lifespan, [router, breaker_admin_router({"storage": storage_breaker})]
    )
    return app
