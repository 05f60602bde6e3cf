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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from resource_service import repository
from resource_service.handlers import Dependencies
from service_kit.broker import BrokerLink
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_PROCESSED, RESOURCE_UPLOADED
from service_kit.resilience.dashboard import BreakerWatch

log = structlog.get_logger(__name__)
router = APIRouter(tags=["dashboard"])
PAGE = Path(__file__).parent / "static" / "dashboard.html"
QUEUES = [RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED]


@dataclass(frozen=True)
class Dashboard:
    watches: list[BreakerWatch]
    dependencies: Dependencies
    broker: BrokerLink

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
        transitions = [watch.subscribe() for watch in self.watches]
        try:
            while not await request.is_disconnected():
                yield _event("snapshot", await self.snapshot())
                for happened in await _next_transitions(transitions, within=1.0):
                    yield _event("transition", happened)
        finally:
            for watch, stream in zip(self.watches, transitions, strict=True):
                watch.unsubscribe(stream)


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


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


# A page and an endless event stream for people, not API operations: not in the OpenAPI.
@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text())


@router.get("/dashboard/stream", include_in_schema=False)
async def dashboard_stream(request: Request) -> StreamingResponse:
    dashboard: Dashboard = request.app.state.dashboard
    return StreamingResponse(
        dashboard.events(request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
