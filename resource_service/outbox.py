"""The outbox relay: publishes the events that uploads committed with their rows.

It also expires the intents of uploads that never committed their row, into deletes.

Safe with several replicas (claims use `FOR UPDATE SKIP LOCKED`); a broker outage only delays
events. Delivery is at least once: a relay that dies between publishing and marking publishes
again, and every consumer is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from sqlalchemy.orm import sessionmaker

from resource_service import repository
from service_kit.broker import BrokerLink
from service_kit.messaging import ResourceEvent

log = structlog.get_logger(__name__)

BATCH_SIZE = 100


class OutboxRelay:
    def __init__(
        self,
        session_factory: sessionmaker,
        broker: BrokerLink,
        poll_seconds: float,
        claim_seconds: float,
    ):
        self._session_factory = session_factory
        self._broker = broker
        self._poll_seconds = poll_seconds
        self._claim_seconds = claim_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

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
                await asyncio.to_thread(self._expire_abandoned_uploads)
                if self._broker.is_up:
                    published = await self.publish_pending()
            except Exception as exc:  # the database or broker is away: try again at the next poll
                log.warning("outbox_relay_failed", error=repr(exc)[:300])
            if published == BATCH_SIZE:
                continue  # more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
            self._wake.clear()

    async def publish_pending(self) -> int:
        events = await asyncio.to_thread(self._claim)
        published: list[int] = []
        try:
            for event_id, queue, event in events:
                await self._broker.publish(queue, event)
                published.append(event_id)
                log.info("event_published", queue=queue, resource_id=event.resource_id)
        finally:
            unpublished = [e[0] for e in events if e[0] not in published]
            await asyncio.to_thread(self._finish, published, unpublished)
        return len(published)

    def _expire_abandoned_uploads(self) -> None:
        with self._session_factory() as session:
            expired = repository.expire_upload_intents(session, BATCH_SIZE)
        for resource_id in expired:  # their `resource.deleted` events go out in this round
            log.warning("upload_intent_expired", resource_id=resource_id)

    def _claim(self) -> list[tuple[int, str, ResourceEvent]]:
        with self._session_factory() as session:
            return repository.claim_outbox_batch(session, BATCH_SIZE, self._claim_seconds)

    def _finish(self, published: list[int], unpublished: list[int]) -> None:
        with self._session_factory() as session:
            repository.finish_outbox_claim(session, published, unpublished)
