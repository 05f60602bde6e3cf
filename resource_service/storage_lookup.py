"""Where files of a type live, asked through a circuit breaker that never leaves us without an
answer: live from the Storage Service (through Retry, CircuitBreaker and TimeLimiter), else the
last good answer (bounded age), else the stub.

Uploads and moves never fail because the Storage Service is down, slow or answering garbage;
which source served each lookup is logged and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx2
import structlog
from prometheus_client import Counter

from resource_service.clients import StorageClient
from resource_service.errors import MalformedStorageAnswer
from resource_service.schemas import StorageLocation
from service_kit import tracing
from service_kit.resilience import CircuitBreaker, call_with_fallback
from service_kit.resilience.retry import Retry
from service_kit.resilience.time_limiter import TimeLimiter

log = structlog.get_logger(__name__)

LOOKUPS = Counter(
    "storage_lookup_total", "Storage location lookups by the source that answered", ["source"]
)


@dataclass
class StorageLookup:
    client: StorageClient
    breaker: CircuitBreaker
    stub: list[StorageLocation]
    last_good_max_age_seconds: float
    retry: Retry | None = None  # outside the breaker: each attempt goes through it
    time_limiter: TimeLimiter | None = None  # inside the breaker: each attempt's deadline
    clock: Callable[[], float] = time.monotonic
    # storage type -> (location, when it was seen); from live answers only
    _last_good: dict[str, tuple[StorageLocation, float]] = field(default_factory=dict)
    last_source: str | None = None  # which source served the latest lookup

    def last_good_ages(self) -> dict[str, float]:
        """Seconds since each storage type's last live answer."""
        now = self.clock()
        return {kind: round(now - seen, 1) for kind, (_, seen) in self._last_good.items()}

    async def location(self, storage_type: str) -> StorageLocation:
        with tracing.tracer.start_as_current_span("storage lookup") as span:
            served = await call_with_fallback(
                self.breaker,
                self._live,
                storage_type,
                fallback=lambda _: self._fallback(storage_type),
                retry=self.retry,
                time_limiter=self.time_limiter,
            )
            location, source = served.value
            span.set_attributes(
                {
                    "storage.type": storage_type,
                    "storage.lookup.source": source,
                    "breaker.state": self.breaker.state.name,
                }
            )
        LOOKUPS.labels(source).inc()
        self.last_source = source
        if served.used_fallback:
            log.warning(
                "storage_lookup_fallback",
                source=source,
                storage_type=storage_type,
                breaker_state=self.breaker.state.name,
                reason=repr(served.error)[:200],
            )
        return location

    async def _live(self, storage_type: str) -> tuple[StorageLocation, str]:
        storages = await self.client.list_storages()
        now = self.clock()
        for seen_type in {s.storage_type for s in storages}:
            self._last_good[seen_type] = (find_location(storages, seen_type), now)
        # An answer without the type we need is a failure: the fallback must serve it.
        return find_location(storages, storage_type), "live"

    def _fallback(self, storage_type: str) -> tuple[StorageLocation, str]:
        remembered = self._last_good.get(storage_type)
        if remembered is not None:
            location, seen_at = remembered
            if self.clock() - seen_at <= self.last_good_max_age_seconds:
                return location, "last_good"
        return find_location(self.stub, storage_type), "stub"


def may_retry(error: BaseException) -> bool:
    """What another attempt may fix: the Storage Service unreachable, slow or failing (5xx);
    never a rejection by the open breaker, a 4xx or an answer of the wrong shape."""
    if isinstance(error, httpx2.HTTPStatusError):
        return error.response.status_code >= 500
    return isinstance(error, httpx2.TransportError | TimeoutError)


def find_location(storages: list[StorageLocation], storage_type: str) -> StorageLocation:
    """The first (lowest id) location of the type; the seed rows come first."""
    for storage in storages:
        if storage.storage_type == storage_type:
            return storage
    raise MalformedStorageAnswer(f"no {storage_type} location in the answer")
