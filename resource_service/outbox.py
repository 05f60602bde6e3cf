"""The outbox relay: publishes the events that uploads committed with their rows.

It also expires the intents of uploads that never committed their row, into deletes.

Safe with several replicas (claims use `FOR UPDATE SKIP LOCKED`); a broker outage only delays
events. Delivery is at least once: a relay that dies between publishing and marking publishes
again, and every consumer is idempotent.

An event that fails on its own (unroutable, refused, timed out while the link is up) backs off
on its own (1, 2, 4 ... 30 s) while later events go out: nothing waits behind it. Past the retry
horizon it is parked: `outbox_event_parked` in the log, `outbox_events_parked_total` in
`/metrics`, `parkedEvents` (DEGRADED) in `/health`. Published events are purged once older than
`OUTBOX_RETENTION_HOURS`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge

from resource_service import repository
from service_kit import tracing
from service_kit.broker import BrokerLink, BrokerUnavailable
from service_kit.db import Database
from service_kit.messaging import ResourceEvent

log = structlog.get_logger(__name__)

BATCH_SIZE = 100
PARKED = Counter(
    "outbox_events_parked", "Outbox events that still failed to publish after the retry horizon"
)
PENDING = Gauge("outbox_events_pending", "Outbox events waiting to be published, as last counted")


@dataclass(frozen=True)
class OutboxTimes:
    poll_seconds: float = 1.0
    claim_seconds: float = 30.0
    horizon_seconds: float = 3600.0  # an event failing longer than this is parked
    retention_hours: float = 24.0  # published events are purged after this


class OutboxRelay:
    def __init__(self, database: Database, broker: BrokerLink, times: OutboxTimes):
        self._database = database
        self._session_factory = database.session_factory
        self._broker = broker
        self._times = times
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        """An upload committed: publish now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            published = 0
            try:
                await self._database.call(self._expire_abandoned_uploads)
                await self._database.call(self._purge_published)
                if self._broker.is_up:
                    published = await self.publish_pending()
                PENDING.set(await self._database.call(self._count_pending))
            except Exception as exc:  # the database or broker is away: try again at the next poll
                log.warning("outbox_relay_failed", error=repr(exc)[:300])
            if published == BATCH_SIZE:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._times.poll_seconds)
            self._wake.clear()

    async def publish_pending(self) -> int:
        events = await self._database.call(self._claim)
        published: list[int] = []
        failed: dict[int, str] = {}
        try:
            for event_id, queue, event, trace_context in events:
                with tracing.continued(
                    trace_context, f"{queue} publish", **{"resource.id": event.resource_id}
                ):
                    if not await self._publish(event_id, queue, event, failed):
                        break  # the link itself is down: the rest waits for it, uncounted
                if event_id not in failed:
                    published.append(event_id)
        finally:
            unpublished = [e[0] for e in events if e[0] not in published and e[0] not in failed]
            await self._database.call(self._finish, published, failed, unpublished)
        return len(published)

    async def _publish(
        self, event_id: int, queue: str, event: ResourceEvent, failed: dict[int, str]
    ) -> bool:
        """Publish one event; a failure of its own goes into `failed`. False when the link is
        down, which is no event's fault."""
        try:
            await self._broker.publish(queue, event)
        except BrokerUnavailable:
            return False
        except Exception as exc:
            if not self._broker.is_up:
                return False
            failed[event_id] = repr(exc)[:500]
            log.warning(
                "event_publish_failed", queue=queue, resource_id=event.resource_id, error=repr(exc)
            )
            return True
        log.info("event_published", queue=queue, resource_id=event.resource_id)
        return True

    def _expire_abandoned_uploads(self) -> None:
        with self._session_factory() as session:
            expired = repository.expire_upload_intents(session, BATCH_SIZE)
        for resource_id in expired:  # their `resource.deleted` events go out in this round
            log.warning("upload_intent_expired", resource_id=resource_id)

    def _count_pending(self) -> int:
        with self._session_factory() as session:
            return repository.count_pending_outbox(session)

    def _purge_published(self) -> None:
        with self._session_factory() as session:
            purged = repository.purge_published(session, self._times.retention_hours, BATCH_SIZE)
        if purged:
            log.info("outbox_purged", events=purged)

    def _claim(self) -> list[repository.ClaimedEvent]:
        with self._session_factory() as session:
            return repository.claim_outbox_batch(session, BATCH_SIZE, self._times.claim_seconds)

    def _finish(self, published: list[int], failed: dict[int, str], unpublished: list[int]) -> None:
        with self._session_factory() as session:
            parked = repository.finish_outbox_claim(
                session, published, failed, unpublished, self._times.horizon_seconds
            )
        for event_id in parked:
            PARKED.inc()
            log.error("outbox_event_parked", event_id=event_id, error=failed[event_id])
