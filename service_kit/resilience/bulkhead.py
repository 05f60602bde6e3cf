"""A semaphore bulkhead that refuses rather than queues, as Resilience4j's with no wait.

Ours because asyncio.Semaphore only waits: a request over the limit must be refused at once, so
that a load above what the service can hold costs it nothing (DESIGN §3: 503 with Retry-After).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge

IN_USE = Gauge("bulkhead_in_use", "Slots of a bulkhead in use now", ["name"])
REFUSED = Counter("bulkhead_refused_total", "Calls a full bulkhead refused", ["name"])


class BulkheadFull(Exception):
    """Every slot is taken: try again later."""


class Bulkhead:
    def __init__(self, name: str, limit: int):
        self.name = name
        self.limit = limit
        self.in_use = 0  # one event loop touches it: no lock needed
        # The series exist from the start, at zero, not from the first refusal.
        IN_USE.labels(name).set(0)
        REFUSED.labels(name)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            REFUSED.labels(self.name).inc()
            raise BulkheadFull(f"{self.name}: all {self.limit} slots in use")
        self.in_use += 1
        IN_USE.labels(self.name).set(self.in_use)
        try:
            yield
        finally:
            self.in_use -= 1
            IN_USE.labels(self.name).set(self.in_use)
