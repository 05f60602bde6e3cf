"""What a live dashboard shows of a breaker, kept as it happens (Hystrix Dashboard's tile).

`BreakerWatch` pushes each transition at once to every open stream, samples the breaker's calls
once a second for a two-minute rate sparkline, and builds the tile: state, time in it,
countdown, rates against thresholds, counts, latency percentiles, settings, and the timeline,
which is the breaker's own STATE_TRANSITION events (`events.py`). Like the metrics exporter, it
binds to the breaker from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any

from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.state import TransitionEvent

SPARKLINE_SECONDS = 120


class BreakerWatch:
    def __init__(self, breaker: CircuitBreaker):
        self.breaker = breaker
        self.entered_at = time.time()
        self.calls_per_second: deque[int] = deque([0] * SPARKLINE_SECONDS, SPARKLINE_SECONDS)
        self._counted = self._calls()
        self._streams: set[asyncio.Queue[dict[str, Any]]] = set()
        breaker.add_listener(self._on_transition)

    def _calls(self) -> int:
        stats = self.breaker.stats
        return stats.successful + stats.failed + stats.ignored + stats.not_permitted

    def _on_transition(self, event: TransitionEvent) -> None:
        self.entered_at = time.time()
        transition = {
            "at": self.entered_at,
            "from": event.from_state.name,
            "to": event.to_state.name,
            "failureRate": event.failure_rate,
            "slowCallRate": event.slow_call_rate,
        }
        for stream in self._streams:
            stream.put_nowait(transition)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that gets every transition from now on; `unsubscribe` it when done."""
        stream: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._streams.add(stream)
        return stream

    def unsubscribe(self, stream: asyncio.Queue[dict[str, Any]]) -> None:
        self._streams.discard(stream)

    async def sample_every_second(self) -> None:
        while True:
            await asyncio.sleep(1)
            calls = self._calls()
            self.calls_per_second.append(calls - self._counted)
            self._counted = calls

    def tile(self) -> dict[str, Any]:
        breaker, settings, window, stats = (
            self.breaker,
            self.breaker.settings,
            self.breaker.window,
            self.breaker.stats,
        )
        return {
            "name": breaker.name,
            "state": breaker.state.name,
            "secondsInState": round(time.time() - self.entered_at, 1),
            "secondsToHalfOpen": round(breaker.open_remaining, 1),
            "failureRate": window.failure_rate,
            "failureRateThreshold": settings.failure_rate_threshold,
            "slowCallRate": window.slow_call_rate,
            "slowCallRateThreshold": settings.slow_call_rate_threshold,
            "bufferedCalls": window.size,
            "minimumCalls": settings.minimum_number_of_calls,
            "calls": {
                "successful": stats.successful,
                "failed": stats.failed,
                "slow": window.slow,
                "ignored": stats.ignored,
                "notPermitted": stats.not_permitted,
            },
            "callsPerSecond": list(self.calls_per_second),
            "latencyMs": percentiles(breaker.durations),
            "settings": settings.model_dump(),
            # The breaker's own STATE_TRANSITION events, newest first: the timeline and
            # `GET /admin/breakers/{name}/events` tell the same story.
            "transitions": [e.as_timeline_entry() for e in reversed(breaker.events.transitions)],
        }


def percentiles(durations: deque[float]) -> dict[str, float | None]:
    ordered = sorted(durations)

    def at(fraction: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99)}


@contextlib.asynccontextmanager
async def sampling(watches: list[BreakerWatch]) -> Any:
    """Run each watch's once-a-second sampler for as long as the block lasts."""
    tasks = [asyncio.create_task(w.sample_every_second()) for w in watches]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
