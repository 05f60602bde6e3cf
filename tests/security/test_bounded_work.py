"""Bounded work (docs/contract.md §3): JSON bodies over MAX_JSON_BYTES get 413 before they are
parsed; uploads over MAX_CONCURRENT_UPLOADS get 503 with Retry-After at once and store nothing; S3
has threads of its own, so a hanging S3 starves neither the database calls nor /health/live; metric
labels come from a closed set."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import httpx2
import psutil
import pytest

from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack
from tests.contract import assert_error
from tests.fixture_types import RecordProperty
from tests.mp3_fixtures import id3v1, with_cover_art

MIB = 1024 * 1024
LIMIT = 16  # MAX_CONCURRENT_UPLOADS's default
CLIENTS = 200
TOO_LARGE = f"Request body is too large: at most {MIB} bytes"


def chunked(size: int) -> Iterator[bytes]:
    """A body with no Content-Length: the limit must be found while it streams."""
    for _ in range(size // (256 * 1024)):
        yield b" " * (256 * 1024)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("service", "path"), [("song", "/songs"), ("storage", "/storages")])
def test_a_json_body_over_the_limit_is_413_before_parsing(
    stack: Stack, service: str, path: str, declared: bool
) -> None:
    url = f"{getattr(stack, service).url}{path}"
    before = stack.http.get(url).json() if service == "storage" else None
    body = b" " * (6 * MIB) if declared else chunked(2 * MIB)
    response = stack.http.post(url, content=body, headers={"Content-Type": "application/json"})
    assert_error(response, 413, TOO_LARGE)
    if before is not None:
        assert stack.http.get(url).json() == before


def in_use(stack: Stack) -> float:
    metrics = stack.http.get(f"{stack.resource.url}/metrics").text

    def gauge(name: str) -> float:
        found = re.search(
            rf'^resilience4j_bulkhead_{name}\{{name="uploads"\}} (\S+)$', metrics, re.M
        )
        assert found, name
        return float(found.group(1))

    return gauge("max_allowed_concurrent_calls") - gauge("available_concurrent_calls")


class PeakRss(threading.Thread):
    """The Resource Service's resident memory, sampled every 20 ms until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.start_rss = self.peak = self.process.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)


async def upload_all(stack: Stack, count: int) -> list[httpx2.Response]:
    limits = httpx2.Limits(max_connections=count + 10)
    async with httpx2.AsyncClient(timeout=120, limits=limits) as client:
        body = make_mp3(1, title="bulkhead")
        return await asyncio.gather(*(
            client.post(f"{stack.resource.url}/resources", content=body,
                        headers={"Content-Type": "audio/mpeg"})
            for _ in range(count)
        ))  # fmt: skip


@pytest.mark.timeout(300)
def test_200_uploads_at_once_against_16_slots_while_s3_hangs(
    stack: Stack, s3_proxy: FaultProxy, record_property: RecordProperty
) -> None:
    rows_before = stack.resource_rows()
    s3_proxy.hold(b"PUT")  # every upload that gets a slot stops in its S3 write
    memory = PeakRss(stack.resource.running.pid)
    memory.start()
    results: list[httpx2.Response] = []
    clients = threading.Thread(
        target=lambda: results.extend(asyncio.run(upload_all(stack, CLIENTS)))
    )
    clients.start()
    deadline = time.monotonic() + 60
    while in_use(stack) < LIMIT:
        assert time.monotonic() < deadline, "the slots never filled"
        time.sleep(0.1)

    # S3 hangs with 16 uploads in it: the database and liveness still answer at once.
    started = time.perf_counter()
    live = stack.http.get(f"{stack.resource.url}/health/live")
    live_seconds = time.perf_counter() - started
    started = time.perf_counter()
    deleted = stack.http.delete(f"{stack.resource.url}/resources", params={"id": "999999999"})
    database_seconds = time.perf_counter() - started
    assert live.status_code == 200 and deleted.json() == {"ids": []}
    assert live_seconds < 2 and database_seconds < 2  # a starved pool waits out S3's timeouts
    refused_before_release = stack.logged("resource", "upload_refused")

    s3_proxy.hold(None)
    s3_proxy.set_mode(Mode.CUT)  # the held requests fail over and are sent again
    s3_proxy.set_mode(Mode.PASS)
    clients.join(120)
    memory.done.set()
    statuses = sorted(r.status_code for r in results)
    accepted = [r.json()["id"] for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code == 503]
    assert len(results) == CLIENTS and set(statuses) <= {200, 503}, statuses
    assert len(accepted) == LIMIT
    assert refused_before_release == CLIENTS - LIMIT  # refused at once, not after a wait
    for response in refused:
        assert_error(response, 503, "Too many uploads at once, try again later")
        assert response.headers["Retry-After"] == "1"
    assert stack.resource_rows() == rows_before + LIMIT  # nothing half-stored
    for resource_id in accepted:
        stack.wait_permanent(resource_id, timeout=60)
    growth = (memory.peak - memory.start_rss) / MIB
    record_property("peak_rss_growth_mib", round(growth, 1))
    record_property("live_seconds_while_s3_hangs", round(live_seconds, 3))
    record_property("database_call_seconds_while_s3_hangs", round(database_seconds, 3))
    print(f"\n200 uploads / 16 slots: peak RSS growth {growth:.1f} MiB; /health/live "
          f"{live_seconds * 1000:.0f} ms and a database call {database_seconds * 1000:.0f} ms "
          "while S3 hung")  # fmt: skip


def test_metric_labels_take_no_made_up_method(stack: Stack) -> None:
    stack.http.request("BREW", f"{stack.resource.url}/resources/1")
    metrics = stack.http.get(f"{stack.resource.url}/metrics").text
    assert 'method="BREW"' not in metrics
    assert re.search(r'^http_requests_total\{method="OTHER",', metrics, re.M)


def test_an_upload_of_the_wrong_type_is_judged_by_its_type_not_by_the_json_limit(
    stack: Stack,
) -> None:
    """The upload route bounds its own body: a 2 MiB PDF is the wrong format, not too large."""
    response = stack.http.post(
        f"{stack.resource.url}/resources",
        content=b"%PDF-1.7" + bytes(2 * MIB),
        headers={"Content-Type": "application/pdf"},
    )
    assert_error(response, 400, "Invalid file format: application/pdf. Only MP3 files are allowed")


@pytest.mark.timeout(300)
def test_a_48_mib_tag_costs_the_processor_little_memory_and_the_file_still_ends_permanent(
    stack: Stack,
) -> None:
    """Issue "No one in, nothing starved", item 5: an ID3 header declaring a 48 MiB tag was
    fetched in one range and held about three times over. Over TAGS_MAX_BYTES (8 MiB) it is
    never read: peak memory grows by at most 64 MiB, and the song comes from the ID3v1 tag."""
    song = with_cover_art(48 * MIB, id3v1=id3v1("Past the tag", "Tail", "End", "1990"))
    memory = PeakRss(stack.processors[0].running.pid)
    memory.start()
    answer = stack.upload(song)
    assert answer.status_code == 200, answer.text
    resource_id = answer.json()["id"]
    stack.wait_permanent(resource_id, timeout=120)
    memory.done.set()
    stored = stack.song_of(resource_id).json()
    assert (stored["name"], stored["artist"], stored["year"]) == ("Past the tag", "Tail", "1990")
    growth = (memory.peak - memory.start_rss) / MIB
    assert growth <= 64, f"the processor grew by {growth:.1f} MiB for one file"
    assert stack.logged("processor0", "tags_too_large") >= 1
    print(f"\n48 MiB tag: the processor's peak RSS grew {growth:.1f} MiB")
