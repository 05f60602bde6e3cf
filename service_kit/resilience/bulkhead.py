"""A semaphore bulkhead that refuses rather than queues: Resilience4j's SemaphoreBulkhead with
`maxWaitDuration` 0, its series named as Resilience4j's Micrometer export names them.

Ours because asyncio.Semaphore only waits: a request over the limit must be refused at once, so
that a load above what the service can hold costs it nothing (DESIGN §3: 503 with Retry-After).

Series: `resilience4j_bulkhead_available_concurrent_calls` and
`resilience4j_bulkhead_max_allowed_concurrent_calls` (Resilience4j's), and
`resilience4j_bulkhead_rejected_calls_total` (ours: Resilience4j publishes a CALL_REJECTED
event, which a Prometheus counter stands for here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge

AVAILABLE = Gauge(
    "resilience4j_bulkhead_available_concurrent_calls", "Calls a bulkhead can take now", ["name"]
)
MAX_ALLOWED = Gauge(
    "resilience4j_bulkhead_max_allowed_concurrent_calls", "A bulkhead's calls at once", ["name"]
)
REJECTED = Counter(
    "resilience4j_bulkhead_rejected_calls", "Calls a full bulkhead rejected", ["name"]
)


class BulkheadFull(Exception):
    """Every slot is taken: try again later (Resilience4j's BulkheadFullException)."""


class Bulkhead:
    def __init__(self, name: str, max_concurrent_calls: int):
        self.name = name
        self.limit = max_concurrent_calls
        self.in_use = 0  # one event loop touches it: no lock needed
        # The series exist from the start, not from the first refusal.
        MAX_ALLOWED.labels(name).set(max_concurrent_calls)
        AVAILABLE.labels(name).set(max_concurrent_calls)
        REJECTED.labels(name)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            REJECTED.labels(self.name).inc()
            raise BulkheadFull(f"{self.name}: all {self.limit} slots in use")
        self.in_use += 1
        AVAILABLE.labels(self.name).set(self.limit - self.in_use)
        try:
            yield
        finally:
            self.in_use -= 1
            AVAILABLE.labels(self.name).set(self.limit - self.in_use)
