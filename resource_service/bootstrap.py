"""The Resource Service's composition root: every part, built in the order they depend on each
other (cosmicpython's `bootstrap`); nothing refers to a part built later. `app.create_app` runs
it in its lifespan and closes what it opened on the way out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx2

from resource_service import handlers, repository
from resource_service.broker import broker_health, make_broker
from resource_service.clients import SongClient, StorageClient
from resource_service.config import Settings
from resource_service.dashboard import Dashboard
from resource_service.object_store import ObjectStore
from resource_service.outbox import OutboxRelay, OutboxTimes
from resource_service.schemas import STORAGE_LIST
from resource_service.storage_lookup import StorageLookup, may_retry
from resource_service.upload_body import UploadPace
from service_kit.broker import BrokerLink, parked_check
from service_kit.db import prepare_database
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_PROCESSED
from service_kit.resilience import CircuitBreaker
from service_kit.resilience.admin import breaker_health
from service_kit.resilience.bulkhead import Bulkhead
from service_kit.resilience.dashboard import BreakerWatch, sampling
from service_kit.resilience.events import EventLog
from service_kit.resilience.metrics import track
from service_kit.resilience.retry import Retry
from service_kit.resilience.time_limiter import TimeLimiter
from service_kit.s3 import make_s3_client
from service_kit.web import HealthCheck, sync_check

ALEMBIC_DIR = Path(__file__).parent / "alembic"
# Moves still running at shutdown get this long to finish; the rest are redelivered.
SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Parts:
    dependencies: handlers.Dependencies
    breakers: dict[str, CircuitBreaker]
    event_logs: dict[str, dict[str, EventLog]]  # "retries" -> {"storage": its events}, ...
    health_checks: dict[str, HealthCheck]
    dashboard: Dashboard


@asynccontextmanager
async def bootstrap(settings: Settings) -> AsyncIterator[Parts]:
    breaker = CircuitBreaker("storage", settings.storage_breaker)
    track(breaker)  # the exporter and the dashboard bind to the breaker from outside
    watch = BreakerWatch(breaker)
    async with AsyncExitStack() as stack:
        database = await asyncio.to_thread(prepare_database, settings, ALEMBIC_DIR)
        stack.callback(database.close)
        retry = Retry("storage", settings.storage_retry, may_retry)
        time_limiter = TimeLimiter("storage", settings.storage_time_limiter)
        lookup = _storage_lookup(stack, settings, breaker, retry, time_limiter)
        uploads = Bulkhead("uploads", settings.max_concurrent_uploads)
        song_http = _http_client(stack, settings.song_service_url, settings.song_timeout_seconds)
        broker = make_broker(settings)
        s3_threads = ThreadPoolExecutor(settings.s3_threads, thread_name_prefix="s3")
        stack.callback(s3_threads.shutdown, wait=False, cancel_futures=True)
        relay = OutboxRelay(database, broker, _outbox_times(settings))
        dependencies = handlers.Dependencies(
            database=database,
            objects=ObjectStore(
                make_s3_client(settings),
                settings.upload_single_put_bytes,
                settings.upload_part_bytes,
                s3_threads,
            ),
            storage=lookup,
            songs=SongClient(song_http),
            relay=relay,
            uploads=uploads,
            max_upload_bytes=settings.max_upload_bytes,
            upload_pace=_upload_pace(settings),
            upload_max_seconds=settings.upload_max_seconds,
            upload_intent_seconds=settings.upload_intent_seconds,
        )
        broker.consume(RESOURCE_PROCESSED, partial(handlers.move_to_permanent, dependencies))
        broker.consume(RESOURCE_DELETED, partial(handlers.remove_deleted, dependencies))
        broker.start()
        stack.push_async_callback(broker.close, SHUTDOWN_GRACE_SECONDS)
        relay.start()
        stack.push_async_callback(relay.stop)
        health_checks = _health_checks(dependencies, broker)
        await stack.enter_async_context(sampling([watch]))
        dashboard = Dashboard([watch], dependencies, broker, settings.dashboard_max_viewers)
        event_logs = {
            "retries": {retry.name: retry.events},
            "timelimiters": {time_limiter.name: time_limiter.events},
            "bulkheads": {uploads.name: uploads.events},
        }
        yield Parts(dependencies, {"storage": breaker}, event_logs, health_checks, dashboard)


def _outbox_times(settings: Settings) -> OutboxTimes:
    return OutboxTimes(
        settings.outbox_poll_seconds,
        settings.outbox_claim_seconds,
        settings.retry_horizon_seconds,
        settings.outbox_retention_hours,
    )


def _storage_lookup(
    stack: AsyncExitStack,
    settings: Settings,
    breaker: CircuitBreaker,
    retry: Retry,
    time_limiter: TimeLimiter,
) -> StorageLookup:
    """Where files live: the Storage Service through Retry, the breaker and the TimeLimiter,
    then fallbacks."""
    stub = STORAGE_LIST.validate_json(settings.storage_stub_json)  # a bad stub stops the start
    http = _http_client(stack, settings.storage_service_url, settings.storage_timeout_seconds)
    return StorageLookup(
        StorageClient(http),
        breaker,
        stub,
        settings.storage_last_good_max_age_seconds,
        retry,
        time_limiter,
    )


def _upload_pace(settings: Settings) -> UploadPace:
    return UploadPace(
        settings.upload_idle_seconds,
        settings.upload_min_bytes_per_second,
        settings.upload_rate_grace_seconds,
        settings.upload_rate_window_seconds,
    )


def _http_client(stack: AsyncExitStack, url: str, timeout: float) -> httpx2.AsyncClient:
    client = httpx2.AsyncClient(base_url=url, timeout=timeout)
    stack.push_async_callback(client.aclose)
    return client


def _health_checks(
    dependencies: handlers.Dependencies, broker: BrokerLink
) -> dict[str, HealthCheck]:
    database = dependencies.database
    return {
        "database": sync_check(database.ping, threads=database.threads),
        "s3": sync_check(
            dependencies.objects.s3.list_buckets, threads=dependencies.objects.threads
        ),
        "broker": broker_health(
            broker,
            partial(dependencies.run_in_session, repository.count_pending_outbox),
            partial(dependencies.run_in_session, repository.count_parked_outbox),
        ),
        "storageBreaker": breaker_health(dependencies.storage.breaker),
        "deadLetters": parked_check(broker),
    }
