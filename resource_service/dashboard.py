"""`GET /dashboard`: the breaker you can watch, live, with the pipeline beside it.

One page (`static/dashboard.html`, served from here: no build step, nothing from the internet)
fed by `GET /dashboard/stream`, server-sent events: every breaker transition the moment it
happens, and a snapshot every second. Read-only: the page shows the admin buttons only once a
person enters the admin token, and the admin routes check it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from prometheus_client import Counter, Gauge

from resource_service import repository
from resource_service.handlers import Dependencies
from service_kit.broker import BrokerLink
from service_kit.deps import part
from service_kit.errors import ApiError
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_PROCESSED, RESOURCE_UPLOADED
from service_kit.resilience.dashboard import BreakerWatch

log = structlog.get_logger(__name__)
router = APIRouter(tags=["dashboard"])
PAGE = Path(__file__).parent / "static" / "dashboard.html"
QUEUES = [RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED]


SNAPSHOTS = Counter("dashboard_snapshots_total", "Dashboard snapshots taken (shared by viewers)")
VIEWERS = Gauge("dashboard_viewers", "Open /dashboard/stream connections")
SNAPSHOT_SECONDS = 1.0


class TooManyViewers(Exception):
    """`max_viewers` streams are open already."""


@dataclass
class Dashboard:
    """Every viewer shares one snapshot a second (its database queries run once, however many
    watch), and at most `max_viewers` streams are open at once."""

    watches: list[BreakerWatch]
    dependencies: Dependencies
    broker: BrokerLink
    max_viewers: int = 20
    viewers: int = 0
    # (when taken, the breakers' last transition times then, the snapshot)
    _latest: tuple[float, tuple[float, ...], dict[str, Any]] | None = None
    _taking: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def shared_snapshot(self) -> dict[str, Any]:
        """The latest snapshot if it is under a second old and no breaker changed state since;
        else one taken now, once for all. (A snapshot from before a transition would put the
        viewers' timelines back by one.)"""
        async with self._taking:
            now = time.monotonic()
            transitions = tuple(watch.entered_at for watch in self.watches)
            latest = self._latest
            if latest is None or now - latest[0] >= SNAPSHOT_SECONDS or latest[1] != transitions:
                self._latest = latest = (now, transitions, await self.snapshot())
                SNAPSHOTS.inc()
            return latest[2]

    async def snapshot(self) -> dict[str, Any]:
        storage = self.dependencies.storage
        return {
            "at": time.time(),
            "breakers": [watch.tile() for watch in self.watches],
            "lookups": {
                "source": storage.last_source,
                "lastGoodAgeSeconds": storage.last_good_ages(),
            },
            "pipeline": await self._pipeline(),
        }

    async def _pipeline(self) -> dict[str, Any]:
        """What the stores say now; a part whose store is away is None, not an error."""
        run = self.dependencies.run_in_session
        parts: dict[str, Any] = {"broker": self.broker.status()}
        probes = {
            "resources": run(repository.count_by_state),
            "outboxPending": run(repository.count_pending_outbox),
            "queues": self.broker.queue_stats(QUEUES),
        }
        for name, probe in probes.items():
            try:
                parts[name] = await asyncio.wait_for(probe, 2)
            except Exception as exc:
                log.debug("dashboard_part_unavailable", part=name, error=repr(exc)[:200])
                parts[name] = None
        parts["parked"] = {queue: parked.depth for queue, parked in self.broker.parked.items()}
        return parts

    async def events(self, request: Request) -> AsyncIterator[str]:
        """One viewer's stream; raises TooManyViewers at its first step when `max_viewers`
        watch already. Its place is given back when it ends: the route takes that first step
        itself, so a stream that began is always closed (asyncio closes a started generator
        that is dropped)."""
        if self.viewers >= self.max_viewers:
            raise TooManyViewers
        self.viewers += 1
        VIEWERS.set(self.viewers)
        transitions = [watch.subscribe() for watch in self.watches]
        try:
            while not await request.is_disconnected():
                yield _event("snapshot", await self.shared_snapshot())
                for happened in await _next_transitions(transitions, within=SNAPSHOT_SECONDS):
                    yield _event("transition", happened)
        finally:
            for watch, stream in zip(self.watches, transitions, strict=True):
                watch.unsubscribe(stream)
            self.viewers -= 1
            VIEWERS.set(self.viewers)


async def _next_transitions(
    streams: list[asyncio.Queue[dict[str, Any]]], within: float
) -> list[dict[str, Any]]:
    """The transitions that come `within` seconds (returning at the first); [] if none."""
    waits = [asyncio.ensure_future(stream.get()) for stream in streams]
    done, pending = await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    for wait in pending:
        wait.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await wait
    happened = [wait.result() for wait in done]
    for stream in streams:  # any that came meanwhile too
        while not stream.empty():
            happened.append(stream.get_nowait())
    return happened


async def _then(first: str, rest: AsyncIterator[str]) -> AsyncIterator[str]:
    yield first
    async for item in rest:
        yield item


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


# A page and an endless event stream for people, not API operations: not in the OpenAPI.
@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())


@runtime_checkable
class HasDashboard(Protocol):
    dashboard: Dashboard


def get_dashboard(request: Request) -> Dashboard:
    return part(request, HasDashboard).dashboard


@router.get("/dashboard/stream", include_in_schema=False)
async def dashboard_stream(
    request: Request, dashboard: Annotated[Dashboard, Depends(get_dashboard)]
) -> StreamingResponse:
    events = dashboard.events(request)
    try:
        first = await anext(events)
    except TooManyViewers:
        raise ApiError(
            503,
            f"Too many dashboard viewers (at most {dashboard.max_viewers}), try again later",
            headers={"Retry-After": "5"},
        ) from None
    return StreamingResponse(
        _then(first, events),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
