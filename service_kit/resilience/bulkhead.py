"""A semaphore bulkhead that refuses rather than queues: Resilience4j's SemaphoreBulkhead with
`maxWaitDuration` 0, its series named as Resilience4j's Micrometer export names them.

Ours because asyncio.Semaphore only waits: a request over the limit must be refused at once, so that
a load above what the service can hold costs it nothing (docs/contract.md §3: 503 with Retry-After).

Series: `resilience4j_bulkhead_available_concurrent_calls` and
`resilience4j_bulkhead_max_allowed_concurrent_calls` (Resilience4j's), and
`resilience4j_bulkhead_rejected_calls_total` (ours: Resilience4j counts its CALL_REJECTED
events only in Micrometer's event metrics, which Prometheus users would miss).
Events (the last 100), Resilience4j's: CALL_PERMITTED, CALL_REJECTED, CALL_FINISHED.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge

from service_kit.resilience.events import EventLog

_metrics: tuple[Gauge, Gauge, Counter] | None = None


def _bulkhead_metrics() -> tuple[Gauge, Gauge, Counter]:
    """(available, max allowed, rejected), registered when the first bulkhead is built, not at
    import: a process with no bulkhead exports no bulkhead series."""
    global _metrics
    if _metrics is None:
        _metrics = (
            Gauge(
                "resilience4j_bulkhead_available_concurrent_calls",
                "Calls a bulkhead can take now",
                ["name"],
            ),
            Gauge(
                "resilience4j_bulkhead_max_allowed_concurrent_calls",
                "A bulkhead's calls at once",
                ["name"],
            ),
            Counter(
                "resilience4j_bulkhead_rejected_calls", "Calls a full bulkhead rejected", ["name"]
            ),
        )
    return _metrics


class BulkheadFull(Exception):
    """Every slot is taken: try again later (Resilience4j's BulkheadFullException)."""


class Bulkhead:
    def __init__(self, name: str, max_concurrent_calls: int):
        self.name = name
        self.limit = max_concurrent_calls
        self.in_use = 0  # one event loop touches it: no lock needed
        self.events = EventLog("bulkheadName", name)
        available, max_allowed, rejected = _bulkhead_metrics()
        # The series exist from the start, not from the first refusal.
        max_allowed.labels(name).set(max_concurrent_calls)
        self._available = available.labels(name)
        self._available.set(max_concurrent_calls)
        self._rejected = rejected.labels(name)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            self._rejected.inc()
            self.events.publish("CALL_REJECTED")
            raise BulkheadFull(f"{self.name}: all {self.limit} slots in use")
        self.in_use += 1
        self._available.set(self.limit - self.in_use)
        self.events.publish("CALL_PERMITTED")
        try:
            yield
        finally:
            self.in_use -= 1
            self._available.set(self.limit - self.in_use)
            self.events.publish("CALL_FINISHED")
