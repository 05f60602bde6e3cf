"""The fallback order of the Storage lookup: live, then last good (bounded age), then the stub."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from resource_service.clients import StorageClient
from resource_service.config import DEFAULT_STORAGE_STUB
from resource_service.schemas import STORAGE_LIST
from resource_service.storage_lookup import StorageLookup, may_retry
from service_kit.resilience import BreakerSettings, CircuitBreaker
from service_kit.resilience.retry import Retry, RetrySettings

LIVE = [
    {"id": 7, "storageType": "STAGING", "bucket": "live-staging", "path": "/in/"},
    {"id": 8, "storageType": "PERMANENT", "bucket": "live-permanent", "path": "/out/"},
    {"id": 9, "storageType": "STAGING", "bucket": "second-staging", "path": "/later/"},
]
MAX_AGE = 60.0


class FakeStorageService:
    """Answers GET /storages as told: rows, a status code, garbage, or a refused connection."""

    def __init__(self) -> None:
        self.answer: object = LIVE

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if self.answer == "refused":
            raise httpx2.ConnectError("refused", request=request)
        if isinstance(self.answer, int):
            return httpx2.Response(self.answer, json={"errorMessage": "x", "errorCode": "500"})
        if self.answer == "garbage":
            return httpx2.Response(200, content=b"<html>not json</html>")
        return httpx2.Response(200, content=json.dumps(self.answer).encode())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def storage() -> FakeStorageService:
    return FakeStorageService()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lookup(storage: FakeStorageService, clock: Clock) -> StorageLookup:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(storage.handle), base_url="http://s")
    breaker = CircuitBreaker(
        "storage-unit",
        BreakerSettings.defaults(minimum_number_of_calls=100, sliding_window_size=100),
        clock=clock,
    )
    stub = STORAGE_LIST.validate_json(DEFAULT_STORAGE_STUB)
    return StorageLookup(StorageClient(http), breaker, stub, MAX_AGE, clock=clock)


def bucket(lookup: StorageLookup, storage_type: str) -> str:
    return asyncio.run(lookup.location(storage_type)).bucket


def test_live_answer_gives_the_lowest_id_of_the_type(lookup: StorageLookup) -> None:
    assert bucket(lookup, "STAGING") == "live-staging"
    assert bucket(lookup, "PERMANENT") == "live-permanent"


@pytest.mark.parametrize("failure", ["refused", 500, 503, "garbage", [{"id": 1}]])
def test_a_failure_after_a_live_answer_serves_the_last_good_one(
    lookup: StorageLookup, storage: FakeStorageService, failure: object
) -> None:
    assert bucket(lookup, "STAGING") == "live-staging"
    storage.answer = failure
    assert bucket(lookup, "STAGING") == "live-staging"
    assert bucket(lookup, "PERMANENT") == "live-permanent"  # remembered from the same answer


@pytest.mark.parametrize("failure", ["refused", 500, "garbage"])
def test_with_no_good_answer_ever_the_stub_serves_the_seed_values(
    lookup: StorageLookup, storage: FakeStorageService, failure: object
) -> None:
    storage.answer = failure
    assert bucket(lookup, "STAGING") == "resources-staging"
    assert bucket(lookup, "PERMANENT") == "resources-permanent"


def test_the_last_good_answer_expires_and_the_stub_takes_over(
    lookup: StorageLookup, storage: FakeStorageService, clock: Clock
) -> None:
    assert bucket(lookup, "STAGING") == "live-staging"
    storage.answer = "refused"
    clock.now += MAX_AGE
    assert bucket(lookup, "STAGING") == "live-staging"
    clock.now += 0.001
    assert bucket(lookup, "STAGING") == "resources-staging"


def test_an_answer_without_the_type_is_a_failure_served_by_the_fallback(
    lookup: StorageLookup, storage: FakeStorageService
) -> None:
    storage.answer = [LIVE[1]]  # PERMANENT only
    assert bucket(lookup, "STAGING") == "resources-staging"
    assert lookup.breaker.window.failed == 1


@pytest.mark.parametrize("path", ["/" + "a" * 984, "/" + "é" * 492])
def test_a_location_that_cannot_hold_a_key_is_a_failure_served_by_the_fallback(
    lookup: StorageLookup, storage: FakeStorageService, path: str
) -> None:
    """Keys built from this path would pass S3's 1024 bytes and the resources' columns: the
    upload would end in a 503 from the database. The lookup fails instead, and the fallback
    serves (issue "No one in, nothing starved", item 2)."""
    assert bucket(lookup, "STAGING") == "live-staging"
    storage.answer = [{**LIVE[0], "path": path}, LIVE[1]]
    assert bucket(lookup, "STAGING") == "live-staging"  # the last good answer
    assert lookup.last_source == "last_good"
    assert lookup.breaker.window.failed == 1


def test_a_rejected_call_is_served_by_the_fallback_without_calling(
    lookup: StorageLookup, storage: FakeStorageService
) -> None:
    assert bucket(lookup, "STAGING") == "live-staging"
    lookup.breaker.force_open()
    storage.answer = LIVE[1:]  # would change the answer if it were asked
    assert bucket(lookup, "STAGING") == "live-staging"
    assert lookup.breaker.snapshot()["not_permitted_calls"] == 1


@pytest.mark.parametrize("client_error", [400, 404])
def test_a_client_error_is_served_by_the_fallback_but_not_counted(
    lookup: StorageLookup, storage: FakeStorageService, client_error: int
) -> None:
    assert bucket(lookup, "STAGING") == "live-staging"
    storage.answer = client_error
    assert bucket(lookup, "STAGING") == "live-staging"
    assert lookup.breaker.window.failed == 0


def test_with_a_retry_one_failure_is_retried_and_the_live_answer_serves(
    storage: FakeStorageService, clock: Clock
) -> None:
    """STORAGE_RETRY_MAX_ATTEMPTS=2: a 503 then the rows; each attempt went through the
    breaker (one failure, one success in its window)."""
    answers = iter([503, LIVE])

    def handle(request: httpx2.Request) -> httpx2.Response:
        storage.answer = next(answers)
        return FakeStorageService.handle(storage, request)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(handle), base_url="http://s")
    breaker = CircuitBreaker(
        "storage-retry",
        BreakerSettings.defaults(minimum_number_of_calls=100, sliding_window_size=100),
        clock=clock,
    )

    async def no_wait(_seconds: float) -> None:
        return None

    retry = Retry("storage-retry", RetrySettings.defaults(max_attempts=2), may_retry, sleep=no_wait)
    stub = STORAGE_LIST.validate_json(DEFAULT_STORAGE_STUB)
    lookup = StorageLookup(StorageClient(http), breaker, stub, MAX_AGE, retry, clock=clock)
    assert bucket(lookup, "STAGING") == "live-staging"
    assert lookup.last_source == "live"
    assert (breaker.window.failed, breaker.window.size) == (1, 2)
