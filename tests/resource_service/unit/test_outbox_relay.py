"""The outbox relay's decisions over a fake database and broker (the quick tier): what is
published, what waits for the link, what fails on its own and is parked, what is logged.
tests/resource_service/integration/test_outbox.py runs the same relay on PostgreSQL and
RabbitMQ; these reach the relay's code in `make mutation` (docs/mutation.md)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog.testing
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from pytest import MonkeyPatch

from resource_service import repository
from resource_service.outbox import BATCH_SIZE, OutboxRelay, OutboxTimes
from service_kit.broker import BrokerUnavailable
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_UPLOADED, ResourceEvent

SESSION = object()  # the one session FakeDatabase opens: each repository call must get it


@dataclass
class FakeDatabase:
    """`call` runs the function at once; its session is a token the fake repository checks."""

    fails: Exception | None = None  # raised by the first call, then healed

    def session_factory(self) -> contextlib.nullcontext[object]:
        return contextlib.nullcontext(SESSION)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.fails is not None:
            error, self.fails = self.fails, None
            raise error
        return fn(*args)


@dataclass
class FakeBroker:
    is_up: bool = True
    refuses: dict[int, Exception] = field(default_factory=dict)  # resource id -> its error
    down_at: int | None = None  # the link goes down when this resource is published
    sent: list[tuple[str, int]] = field(default_factory=list)

    async def publish(self, queue: str, event: ResourceEvent) -> None:
        if event.resource_id == self.down_at:
            self.is_up = False
            raise BrokerUnavailable("the link is down")
        if event.resource_id in self.refuses:
            raise self.refuses[event.resource_id]
        self.sent.append((queue, event.resource_id))


@dataclass
class FakeRepository:
    claimed: list[repository.ClaimedEvent]
    parks: list[int] = field(default_factory=list)  # of the failed ids, which are parked
    finished: list[tuple[list[int], dict[int, str], list[int]]] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    purged: int = 0
    pending: int = 0
    later: list[list[repository.ClaimedEvent]] = field(default_factory=list)  # next claims
    rounds: int = 0  # relay rounds seen (each ends by counting what waits)
    round_done: asyncio.Event = field(default_factory=asyncio.Event)

    calls: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # the last arguments

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def recorded(name: str, answer: Callable[[], Any]) -> Callable[..., Any]:
            def call(session: Any, *args: Any) -> Any:
                assert session is SESSION, f"{name} got no session of the relay's own"
                self.calls[name] = args
                return answer()

            return call

        monkeypatch.setattr(repository, "claim_outbox_batch", recorded("claim", self.claim))
        monkeypatch.setattr(repository, "finish_outbox_claim", self.finish)
        monkeypatch.setattr(
            repository, "expire_upload_intents", recorded("expire", lambda: self.expired)
        )
        monkeypatch.setattr(repository, "purge_published", recorded("purge", lambda: self.purged))
        monkeypatch.setattr(repository, "count_pending_outbox", recorded("count", self.count))

    def claim(self) -> list[repository.ClaimedEvent]:
        batch, self.claimed = self.claimed, (self.later.pop(0) if self.later else [])
        return batch

    def count(self) -> int:
        self.rounds += 1
        self.round_done.set()
        return self.pending

    async def wait_rounds(self, rounds: int) -> None:
        while self.rounds < rounds:
            self.round_done.clear()
            await self.round_done.wait()

    def finish(
        self,
        session: Any,
        published: list[int],
        failed: dict[int, str],
        unpublished: list[int],
        *rest: Any,
    ) -> list[int]:
        assert session is SESSION, "finish got no session of the relay's own"
        self.calls["finish"] = rest
        self.finished.append((published, failed, unpublished))
        return [event_id for event_id in self.parks if event_id in failed]


def claimed(*resource_ids: int) -> list[repository.ClaimedEvent]:
    return [
        repository.ClaimedEvent(100 + rid, RESOURCE_UPLOADED, ResourceEvent(rid), None)
        for rid in resource_ids
    ]


@pytest.fixture
def relay_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., OutboxRelay]]:
    def make(repo: FakeRepository, broker: FakeBroker) -> OutboxRelay:
        repo.install(monkeypatch)
        return OutboxRelay(FakeDatabase(), broker, OutboxTimes(poll_seconds=0.01))  # type: ignore[arg-type]

    yield make


def parked_total() -> float:
    return REGISTRY.get_sample_value("outbox_events_parked_total") or 0.0


def test_claimed_events_are_published_in_order_and_marked(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    repo, broker = FakeRepository(claimed(1, 2, 3)), FakeBroker()
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(relay_with(repo, broker).publish_pending()) == 3
    assert broker.sent == [(RESOURCE_UPLOADED, 1), (RESOURCE_UPLOADED, 2), (RESOURCE_UPLOADED, 3)]
    assert repo.finished == [([101, 102, 103], {}, [])]
    published = [e["resource_id"] for e in logs if e["event"] == "event_published"]
    assert published == [1, 2, 3]


def test_an_event_that_fails_on_its_own_does_not_hold_up_the_others(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    repo = FakeRepository(claimed(1, 2, 3))
    broker = FakeBroker(refuses={2: ValueError("unroutable")})
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(relay_with(repo, broker).publish_pending()) == 2
    assert [rid for _, rid in broker.sent] == [1, 3]
    assert repo.finished == [([101, 103], {102: repr(ValueError("unroutable"))}, [])]
    [failed] = [e for e in logs if e["event"] == "event_publish_failed"]
    assert failed["resource_id"] == 2 and "unroutable" in failed["error"]
    assert failed["log_level"] == "warning"


@pytest.mark.parametrize("how", ["unavailable", "error while down"])
def test_a_link_that_goes_down_leaves_the_rest_unpublished_and_uncounted(
    relay_with: Callable[..., OutboxRelay], how: str
) -> None:
    repo = FakeRepository(claimed(1, 2, 3))
    if how == "unavailable":
        broker = FakeBroker(down_at=2)
    else:  # an error of the publish itself, but the link is down by then: no event's fault
        broker = FakeBroker(refuses={2: ConnectionError("reset")})
        broker_publish = broker.publish

        async def publish(queue: str, event: ResourceEvent) -> None:
            if event.resource_id == 2:
                broker.is_up = False
            await broker_publish(queue, event)

        broker.publish = publish  # type: ignore[method-assign]
    assert asyncio.run(relay_with(repo, broker).publish_pending()) == 1
    assert repo.finished == [([101], {}, [102, 103])]


def test_an_event_failing_past_the_horizon_is_parked_counted_and_logged(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    repo = FakeRepository(claimed(1, 2), parks=[102])
    broker = FakeBroker(refuses={2: ValueError("unroutable")})
    before = parked_total()
    with structlog.testing.capture_logs() as logs:
        asyncio.run(relay_with(repo, broker).publish_pending())
    assert parked_total() == before + 1
    [parked] = [e for e in logs if e["event"] == "outbox_event_parked"]
    assert parked["event_id"] == 102 and "unroutable" in parked["error"]
    assert parked["log_level"] == "error"


def test_a_round_expires_intents_purges_publishes_and_counts_what_waits(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    deleted = repository.ClaimedEvent(9, RESOURCE_DELETED, ResourceEvent(7), None)
    repo = FakeRepository([*claimed(4), deleted], expired=[7, 8], purged=5, pending=3)
    broker = FakeBroker()
    relay = relay_with(repo, broker)

    async def one_round() -> list[MutableMapping[str, Any]]:
        with structlog.testing.capture_logs() as logs:
            relay.start()
            await repo.wait_rounds(1)
            await relay.stop()
        return logs

    logs = asyncio.run(one_round())
    assert broker.sent[:2] == [(RESOURCE_UPLOADED, 4), (RESOURCE_DELETED, 7)]
    expired = [e["resource_id"] for e in logs if e["event"] == "upload_intent_expired"]
    assert expired[:2] == [7, 8]
    assert any(e["event"] == "outbox_purged" and e["events"] == 5 for e in logs)
    assert REGISTRY.get_sample_value("outbox_events_pending") == 3


def test_a_relay_without_a_link_publishes_nothing_and_keeps_polling(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    repo, broker = FakeRepository(claimed(1)), FakeBroker(is_up=False)
    relay = relay_with(repo, broker)

    async def three_polls() -> None:
        relay.start()
        await repo.wait_rounds(3)
        await relay.stop()

    asyncio.run(three_polls())
    assert broker.sent == [] and repo.finished == []


def test_a_full_batch_is_followed_at_once_by_the_next(monkeypatch: MonkeyPatch) -> None:
    """More than a batch waiting: the relay claims again without waiting out the poll (an
    hour here: the test would time out)."""
    repo = FakeRepository(claimed(*range(1, BATCH_SIZE + 1)), later=[claimed(500)])
    repo.install(monkeypatch)
    broker = FakeBroker()
    times = OutboxTimes(poll_seconds=3600)
    relay = OutboxRelay(FakeDatabase(), broker, times)  # type: ignore[arg-type]

    async def two_rounds() -> None:
        relay.start()
        await asyncio.wait_for(repo.wait_rounds(2), 30)
        await relay.stop()

    asyncio.run(two_rounds())
    assert len(broker.sent) == BATCH_SIZE + 1 and broker.sent[-1] == (RESOURCE_UPLOADED, 500)


def test_the_relay_asks_the_repository_with_its_batch_and_its_times(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    """The batch size and each of OutboxTimes reach the query that uses them."""
    repo, broker = FakeRepository(claimed(1)), FakeBroker()
    relay = relay_with(repo, broker)
    relay._times = OutboxTimes(claim_seconds=31.0, horizon_seconds=61.0, retention_hours=5.0)

    async def one_round() -> None:
        relay.start()
        await repo.wait_rounds(1)
        await relay.stop()

    asyncio.run(one_round())
    assert repo.calls == {
        "expire": (BATCH_SIZE,),
        "purge": (5.0, BATCH_SIZE),
        "claim": (BATCH_SIZE, 31.0),
        "finish": (61.0,),
        "count": (),
    }


# --- what a mutation run found unchecked (docs/mutation.md) ----------------------------------


def test_a_failing_round_is_logged_with_its_error_and_the_relay_goes_on(
    monkeypatch: MonkeyPatch,
) -> None:
    repo = FakeRepository([])
    repo.install(monkeypatch)
    error = OSError("the database is away " + "x" * 400)
    times = OutboxTimes(poll_seconds=0.01)
    relay = OutboxRelay(FakeDatabase(fails=error), FakeBroker(), times)  # type: ignore[arg-type]

    async def failing_then_healed() -> list[MutableMapping[str, Any]]:
        with structlog.testing.capture_logs() as logs:
            relay.start()
            await asyncio.wait_for(repo.wait_rounds(1), 10)  # the next poll's round completes
            await relay.stop()
        return logs

    logs = asyncio.run(failing_then_healed())
    assert [e for e in logs if e["event"] == "outbox_relay_failed"] == [
        {"event": "outbox_relay_failed", "log_level": "warning", "error": repr(error)[:300]}
    ]


def test_stop_before_start_does_nothing_and_stop_after_start_ends_the_loop(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    repo = FakeRepository([])
    relay = relay_with(repo, FakeBroker())

    async def start_and_stop() -> int:
        await relay.stop()  # never started: nothing to cancel
        relay.start()
        await repo.wait_rounds(1)
        await relay.stop()
        rounds = repo.rounds
        await asyncio.sleep(0.1)  # ten polls' worth: a loop still running would count them
        return repo.rounds - rounds

    assert asyncio.run(start_and_stop()) == 0


def test_each_publish_is_a_span_in_the_trace_its_row_recorded(
    relay_with: Callable[..., OutboxRelay], spans: InMemorySpanExporter
) -> None:
    trace_id, upload_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    row = repository.ClaimedEvent(
        101, RESOURCE_UPLOADED, ResourceEvent(1), f"00-{trace_id}-{upload_span}-01"
    )
    spans.clear()
    asyncio.run(relay_with(FakeRepository([row]), FakeBroker()).publish_pending())
    [publish] = spans.get_finished_spans()
    assert publish.name == f"{RESOURCE_UPLOADED} publish"
    assert f"{publish.context.trace_id:032x}" == trace_id
    assert publish.parent is not None and f"{publish.parent.span_id:016x}" == upload_span
    assert publish.attributes is not None and publish.attributes["resource.id"] == 1


def test_a_failed_publish_keeps_500_characters_of_its_error_and_logs_its_queue(
    relay_with: Callable[..., OutboxRelay],
) -> None:
    error = ValueError("refused " + "y" * 600)
    repo, broker = FakeRepository(claimed(1, 2)), FakeBroker(refuses={2: error})
    with structlog.testing.capture_logs() as logs:
        asyncio.run(relay_with(repo, broker).publish_pending())
    assert repo.finished == [([101], {102: repr(error)[:500]}, [])]
    lines = {e["event"]: e for e in logs}
    published = {"queue": RESOURCE_UPLOADED, "resource_id": 1}
    assert lines["event_published"] == {
        "event": "event_published",
        "log_level": "info",
        **published,
    }
    assert lines["event_publish_failed"]["queue"] == RESOURCE_UPLOADED
    assert lines["event_publish_failed"]["error"] == repr(error)
