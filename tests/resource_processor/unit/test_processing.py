"""The `resource.uploaded` handler against scripted peers and a recording publisher.

The peers are httpx2.MockTransport routes, so no sockets; the backoff's sleep is injected and
only recorded, so no waiting. A scripted success to a ranged GET is a 206 with that range.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from prometheus_client import REGISTRY
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from devstack.testing.mp3 import iter_mp3_chunks, make_mp3, not_mp3
from resource_processor.clients import PeerServices, RetryPolicy
from resource_processor.errors import PeerUnavailable
from resource_processor.handlers import ResourceProcessor
from resource_processor.remote_file import BLOCK_BYTES
from resource_processor.tags import extract_song_metadata
from service_kit.messaging import DeadLetter, ResourceEvent

SONG = make_mp3(61, title="Song", artist="Band", album="Record", year=2021)
Reply = int | httpx2.Response | Exception  # a status, a whole response, or an error to raise
# The contract's 404s for resource 7: deleted, and a row whose file S3 no longer has.
NOT_FOUND = httpx2.Response(404, json={"errorMessage": "Resource with ID=7 not found"})
FILE_MISSING = httpx2.Response(
    404, json={"errorMessage": "The file of resource ID=7 is missing from storage"}
)


@dataclass
class ScriptedPeer:
    """Answers each request with the next reply; the last reply repeats forever."""

    replies: list[Reply]
    body: bytes = b""
    requests: list[httpx2.Request] = field(default_factory=list)

    def answer(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx2.Response):
            return reply
        if 200 <= reply < 300:
            return self._success(reply, request.headers.get("Range"))
        return httpx2.Response(reply, json={"errorMessage": "scripted", "errorCode": str(reply)})

    def _success(self, status: int, byte_range: str | None) -> httpx2.Response:
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", byte_range or "")
        if match is None:
            return httpx2.Response(status, content=self.body)
        first, last = int(match[1]), min(int(match[2]), len(self.body) - 1)
        headers = {"Content-Range": f"bytes {first}-{last}/{len(self.body)}"}
        return httpx2.Response(206, content=self.body[first : last + 1], headers=headers)

    @property
    def ranges(self) -> list[str | None]:
        return [request.headers.get("Range") for request in self.requests]


@dataclass
class Harness:
    """The handler wired to two scripted peers, a recording publisher and a recording sleep."""

    resources: ScriptedPeer
    songs: ScriptedPeer
    attempts: int = 5
    publish_error: Exception | None = None
    published: list[ResourceEvent] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)

    def process(self, resource_id: int) -> None:
        asyncio.run(self._process(resource_id))

    async def _process(self, resource_id: int) -> None:
        def route(request: httpx2.Request) -> httpx2.Response:
            if request.url.host == "resources.test":
                return self.resources.answer(request)
            return self.songs.answer(request)

        async def record_wait(seconds: float) -> None:
            self.waits.append(seconds)

        async def publish(event: ResourceEvent) -> None:
            if self.publish_error is not None:
                raise self.publish_error
            self.published.append(event)

        retry = RetryPolicy(self.attempts, 0.2, 3.0, sleep=record_wait)
        async with httpx2.AsyncClient(transport=httpx2.MockTransport(route)) as http:
            peers = PeerServices(http, "http://resources.test", "http://songs.test", retry)
            processor = ResourceProcessor(peers, publish)
            await processor.process_uploaded(ResourceEvent(resource_id))

    @property
    def posted(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.songs.requests if r.method == "POST"]


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    def make(resources: list[Reply], songs: list[Reply], body: bytes = SONG, **kw: Any) -> Harness:
        return Harness(ScriptedPeer(resources, body), ScriptedPeer(songs), **kw)

    return make


def messages_counted(outcome: str) -> float:
    value = REGISTRY.get_sample_value("resource_processor_messages_total", {"outcome": outcome})
    return value or 0.0


def test_happy_path_posts_exactly_the_tags_and_publishes_processed(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness([200], [200])
    before = messages_counted("processed")
    harness.process(7)
    # The first block (the ID3 tag and the first frames), then the last (a possible ID3v1 tag).
    tail = (len(SONG) - 1) // BLOCK_BYTES * BLOCK_BYTES
    assert [r.url.path for r in harness.resources.requests] == ["/resources/7"] * 2
    assert harness.resources.ranges == [
        f"bytes=0-{BLOCK_BYTES - 1}",
        f"bytes={tail}-{len(SONG) - 1}",
    ]
    assert harness.posted == [extract_song_metadata(SONG, 7)]
    assert harness.posted[0] == {
        "id": 7,
        "name": "Song",
        "artist": "Band",
        "album": "Record",
        "duration": "01:01",
        "year": "2021",
    }
    assert harness.published == [ResourceEvent(7)]
    assert messages_counted("processed") == before + 1


def stored_song(**changes: str) -> httpx2.Response:
    """The Song Service's `GET /songs/7` answer: this file's song, with `changes`."""
    return httpx2.Response(200, json={**extract_song_metadata(SONG, 7), **changes})


def test_song_already_saved_counts_as_done(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness([200], [409, stored_song()])
    harness.process(7)
    assert [(r.method, r.url.path) for r in harness.songs.requests] == [
        ("POST", "/songs"),
        ("GET", "/songs/7"),
    ]
    assert harness.published == [ResourceEvent(7)]


def test_a_song_id_taken_by_another_song_is_parked_not_done(
    make_harness: Callable[..., Harness],
) -> None:
    """Ids are sequential and `POST /songs` is open: junk posted for the next id first must
    not pass for this upload's tags (issue "No one in, nothing starved", item 3)."""
    harness = make_harness([200], [409, stored_song(name="junk", year="1999")])
    before = messages_counted("dead_lettered")
    with pytest.raises(DeadLetter, match=r"song id 7 is taken by a different song.*name, year"):
        harness.process(7)
    assert harness.published == []
    assert messages_counted("dead_lettered") == before + 1


def test_a_song_deleted_between_the_409_and_the_check_is_posted_again(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness([200], [409, 404, 201])
    harness.process(7)
    assert [r.method for r in harness.songs.requests] == ["POST", "GET", "POST"]
    assert harness.published == [ResourceEvent(7)]


def test_a_resource_deleted_before_processing_is_done_with(
    make_harness: Callable[..., Harness],
) -> None:
    # A 404 is a resource deleted since its upload: its `resource.deleted` cleans up, so the
    # message is acked (not parked) with no song and no `resource.processed`.
    harness = make_harness([NOT_FOUND], [200])
    before = messages_counted("gone")
    harness.process(7)
    assert harness.songs.requests == []
    assert harness.published == []
    assert messages_counted("gone") == before + 1


def test_a_resource_deleted_while_its_tags_are_read_is_done_with(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness([200, NOT_FOUND], [200])  # the first range is there, the next not
    before = messages_counted("gone")
    harness.process(7)
    assert len(harness.resources.requests) == 2
    assert harness.songs.requests == []
    assert harness.published == []
    assert messages_counted("gone") == before + 1


@pytest.mark.parametrize("resources", [[FILE_MISSING], [200, FILE_MISSING], [404]])
def test_a_row_whose_file_is_missing_is_parked_never_done_with(
    make_harness: Callable[..., Harness], resources: list[Reply]
) -> None:
    # Only the contract's "not found" means deleted. A 404 that says the file is missing from
    # storage (or any 404 we do not know) is parked with what it said, never acked as gone.
    harness = make_harness(resources, [200])
    before = messages_counted("gone")
    with pytest.raises(DeadLetter, match="resource 7: resource_service answered 404"):
        harness.process(7)
    assert harness.songs.requests == []
    assert harness.published == []
    assert messages_counted("gone") == before


@pytest.mark.parametrize(
    ("resources", "songs"), [([200], [400]), ([400], [200]), ([403], [200]), ([200], [422])]
)
def test_other_4xx_from_either_peer_is_dead_lettered_without_retry(
    make_harness: Callable[..., Harness], resources: list[Reply], songs: list[Reply]
) -> None:
    harness = make_harness(resources, songs)
    before = messages_counted("dead_lettered")
    with pytest.raises(DeadLetter, match="answered 4"):
        harness.process(7)
    assert len(harness.resources.requests) + len(harness.songs.requests) <= 3  # 2 ranges, 1 POST
    assert harness.waits == []
    assert harness.published == []
    assert messages_counted("dead_lettered") == before + 1


@pytest.mark.parametrize(
    "transient",
    [
        503,
        500,
        httpx2.ConnectError("refused"),
        httpx2.ReadTimeout("slow"),
        httpx2.ReadError("reset"),
    ],
    ids=["503", "500", "connect-error", "read-timeout", "read-error"],
)
@pytest.mark.parametrize("failing_peer", ["resources", "songs"])
def test_transient_failure_is_retried_then_succeeds(
    make_harness: Callable[..., Harness], transient: Reply, failing_peer: str
) -> None:
    scripts = {"resources": [200], "songs": [200], failing_peer: [transient, 200]}
    harness = make_harness(scripts["resources"], scripts["songs"])
    harness.process(7)
    extra = 1 if failing_peer == "resources" else 0  # the range after the first
    assert len(getattr(harness, failing_peer).requests) == 2 + extra
    assert len(harness.waits) == 1 and 0.2 <= harness.waits[0] <= 0.4
    assert harness.posted[-1] == extract_song_metadata(SONG, 7)
    assert harness.published == [ResourceEvent(7)]


@pytest.mark.parametrize("failing_peer", ["resources", "songs"])
def test_failure_that_outlasts_the_quick_retries_goes_up_to_be_retried_later(
    make_harness: Callable[..., Harness], failing_peer: str
) -> None:
    # Not parked: a transient error after the in-process tries comes back from RabbitMQ later.
    scripts = {"resources": [200], "songs": [200], failing_peer: [503]}
    harness = make_harness(scripts["resources"], scripts["songs"], attempts=5)
    with pytest.raises(PeerUnavailable, match="answered 503"):
        harness.process(7)
    assert len(getattr(harness, failing_peer).requests) == 5
    # Exponential from 0.2 s (plus up to 0.2 s of jitter), never over the 3 s cap.
    assert len(harness.waits) == 4
    for attempt, wait in enumerate(harness.waits):
        assert min(0.2 * 2**attempt, 3.0) <= wait <= 3.0
    assert harness.published == []


def test_unreadable_audio_is_dead_lettered_without_saving_a_song(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness([200], [200], body=not_mp3())
    with pytest.raises(DeadLetter, match="unreadable audio"):
        harness.process(7)
    assert harness.songs.requests == []
    assert harness.published == []


def test_a_failed_publish_is_raised_for_requeue_not_dead_lettered(
    make_harness: Callable[..., Harness],
) -> None:
    harness = make_harness([200], [200], publish_error=ConnectionError("broker gone"))
    before = messages_counted("failed")
    with pytest.raises(ConnectionError):  # message_handler requeues it; the 409 makes it safe
        harness.process(7)
    assert messages_counted("failed") == before + 1


class BrokenMidway(httpx2.AsyncByteStream):
    """A body that stops after its first half, as when the peer dies mid-answer."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._data[: len(self._data) // 2]
        raise httpx2.RemoteProtocolError("peer closed connection mid-body")


def test_a_range_cut_off_midway_is_fetched_again(make_harness: Callable[..., Harness]) -> None:
    head = SONG[:BLOCK_BYTES]
    cut_off = httpx2.Response(
        206,
        stream=BrokenMidway(head),
        headers={"Content-Range": f"bytes 0-{BLOCK_BYTES - 1}/{len(SONG)}"},
    )
    harness = make_harness([cut_off, 200], [200])
    harness.process(7)
    assert harness.resources.ranges[:2] == [f"bytes=0-{BLOCK_BYTES - 1}"] * 2
    assert harness.posted == [extract_song_metadata(SONG, 7)]  # not the half range


def test_a_server_that_ignores_range_gives_the_same_tags(
    make_harness: Callable[..., Harness],
) -> None:
    whole = httpx2.Response(200, content=SONG, headers={"Content-Length": str(len(SONG))})
    harness = make_harness([whole], [200])
    harness.process(7)
    assert harness.posted == [extract_song_metadata(SONG, 7)]


@pytest.mark.parametrize("size", [1_000_000, 100_000_000], ids=["1MB", "100MB"])
def test_a_file_costs_the_same_few_requests_whatever_its_size(
    make_harness: Callable[..., Harness], size: int
) -> None:
    body = b"".join(iter_mp3_chunks(size, title="Big"))
    harness = make_harness([200], [200], body=body)
    before = fetched_bytes()
    harness.process(7)
    assert harness.posted == [extract_song_metadata(body, 7)]
    assert harness.posted[0]["name"] == "Big"
    assert len(harness.resources.requests) == 2
    assert fetched_bytes() - before <= 2 * BLOCK_BYTES <= 256 * 1024


def fetched_bytes() -> float:
    return REGISTRY.get_sample_value("resource_processor_fetched_bytes_total") or 0.0


def test_every_log_line_names_the_resource(make_harness: Callable[..., Harness]) -> None:
    harness = make_harness([503, 200], [409, stored_song()])
    with capture_logs(processors=[merge_contextvars]) as logs:
        harness.process(7)
    assert logs, "the handler logged nothing"
    assert all(entry.get("resource_id") == 7 for entry in logs), logs
