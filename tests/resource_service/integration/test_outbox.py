"""The outbox relay on real PostgreSQL and RabbitMQ: an event it cannot publish backs off on its
own while the events after it go out, is parked past the horizon, and published events are
purged after the retention time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Result, text
from sqlalchemy.orm import Session, sessionmaker

import resource_service
from devstack.testing.stack import wait_until
from resource_service import repository
from resource_service.models import OutboxEvent
from resource_service.outbox import OutboxRelay, OutboxTimes
from service_kit.db import Database, ensure_database, make_engine, migrate_and_seed
from service_kit.messaging import RESOURCE_UPLOADED
from tests.amqp import declare, link_running, message_count, on_loop_of
from tests.fixture_types import DatabaseUrls
from tests.infra import RabbitVhost

ALEMBIC = Path(resource_service.__file__).parent / "alembic"
UNROUTABLE = "no.such.queue"
Sessions = sessionmaker[Session]


@pytest.fixture
def database(new_database_url: DatabaseUrls) -> Iterator[Database]:
    url = new_database_url("outbox")
    ensure_database(url)
    engine = make_engine(url)
    migrate_and_seed(engine, ALEMBIC)
    database = Database(engine, threads=2, timeout_seconds=5)
    yield database
    database.close()


@pytest.fixture
def sessions(database: Database) -> Sessions:
    return database.session_factory


def add_events(sessions: Sessions, *queues: str) -> list[int]:
    with sessions() as session:
        events = [OutboxEvent(queue=q, resource_id=n) for n, q in enumerate(queues, 1)]
        session.add_all(events)
        session.commit()
        return [e.id for e in events]


def sql(sessions: Sessions, statement: str, **params: object) -> Result[Any]:
    with sessions() as session:
        result = session.execute(text(statement), params)
        session.commit()
        return result


def row(sessions: Sessions, event_id: int) -> OutboxEvent | None:
    with sessions() as session:
        return session.get(OutboxEvent, event_id)


def stored(sessions: Sessions, event_id: int) -> OutboxEvent:
    found = row(sessions, event_id)
    assert found is not None, f"event {event_id} is not stored"
    return found


def test_one_unroutable_event_holds_back_none_of_the_events_after_it(
    database: Database, sessions: Sessions, rabbitmq_vhost: RabbitVhost
) -> None:
    url = rabbitmq_vhost.url
    declare(url, RESOURCE_UPLOADED)
    first, stuck, third = add_events(sessions, RESOURCE_UPLOADED, UNROUTABLE, RESOURCE_UPLOADED)
    with link_running(url, None) as link:
        relay = OutboxRelay(database, link, OutboxTimes(horizon_seconds=3600))
        wait_until(lambda: link.is_up, 15, "the link connected")
        assert on_loop_of(link, relay.publish_pending()) == 2
        assert message_count(url, RESOURCE_UPLOADED) == 2
        failed = stored(sessions, stuck)
        assert (failed.published_at, failed.parked_at, failed.attempts) == (None, None, 1)
        error = failed.last_error or ""
        assert "NO_ROUTE" in error or "DeliveryError" in error
        assert sql(sessions, "SELECT next_attempt_at > now() FROM outbox WHERE id = :i", i=stuck)

        # While it backs off, what comes after it goes out at once.
        [later] = add_events(sessions, RESOURCE_UPLOADED)
        assert on_loop_of(link, relay.publish_pending()) == 1
        assert stored(sessions, later).published_at is not None
        assert stored(sessions, stuck).attempts == 1  # not tried again before its time

        # Its time comes, still unroutable, and it has been failing past the horizon: parked.
        sql(
            sessions,
            "UPDATE outbox SET next_attempt_at = now(), created_at = now() - interval '2 hours'"
            " WHERE id = :i",
            i=stuck,
        )
        assert on_loop_of(link, relay.publish_pending()) == 0
    parked = stored(sessions, stuck)
    assert parked.parked_at is not None and parked.attempts == 2
    with sessions() as session:
        assert repository.count_parked_outbox(session) == 1
        assert repository.count_pending_outbox(session) == 0
        assert repository.claim_outbox_batch(session, 10, 30) == []  # a parked one stays put
    assert stored(sessions, first).published_at and stored(sessions, third).published_at


def test_published_events_are_purged_after_the_retention_time(sessions: Sessions) -> None:
    old, recent, pending = add_events(sessions, *[RESOURCE_UPLOADED] * 3)
    sql(
        sessions,
        "UPDATE outbox SET published_at = now() - interval '25 hours' WHERE id = :i",
        i=old,
    )
    sql(
        sessions,
        "UPDATE outbox SET published_at = now() - interval '23 hours' WHERE id = :i",
        i=recent,
    )
    with sessions() as session:
        assert repository.purge_published(session, retention_hours=24, limit=100) == 1
    assert row(sessions, old) is None
    assert row(sessions, recent) is not None and row(sessions, pending) is not None
