"""The Storage Service dies, freezes or answers garbage: uploads and moves go on (docs/contract.md
§5)."""

from __future__ import annotations

import signal
import statistics
import time

import pytest

from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from tests.faults.conftest import BREAKER, TIMEOUT_DURATION, breaker, lookup_counts
from tests.fixture_types import RecordProperty

# The breaker moves to HALF_OPEN on the first call after its wait, and closes after its permitted
# trial calls succeed: recovery takes the wait plus a few uploads.
RECOVERY_SECONDS = BREAKER["WAIT_DURATION_IN_OPEN_STATE"] + 3


def timed_upload(stack: Stack, title: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = stack.upload(make_mp3(1, title=title))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return response.json()["id"], elapsed


def upload_until_closed(stack: Stack, prefix: str) -> list[int]:
    """Keep uploading (the breaker only moves on calls) until it reports CLOSED again."""
    ids: list[int] = []

    def closed() -> bool:
        ids.append(timed_upload(stack, f"{prefix} {len(ids)}")[0])
        return bool(breaker(stack)["state"] == "CLOSED")

    wait_until(closed, RECOVERY_SECONDS, lambda: f"breaker closed again\n{stack.logs()}")
    return ids


def assert_live_again(stack: Stack) -> None:
    before = lookup_counts(stack)["live"]
    timed_upload(stack, "live again")
    assert lookup_counts(stack)["live"] > before


def assert_all_permanent(stack: Stack, ids: list[int]) -> None:
    for resource_id in ids:
        row = stack.wait_permanent(resource_id, timeout=20)
        assert (row.bucket, row.staging_bucket) == ("resources-permanent", "resources-staging")


def test_storage_killed_during_a_stream_of_uploads(
    stack: Stack, record_property: RecordProperty
) -> None:
    ids = [timed_upload(stack, "before kill")[0] for _ in range(3)]
    before = lookup_counts(stack)
    stack.storage.signal(signal.SIGKILL)
    stack.storage.running.wait()
    ids += [timed_upload(stack, f"killed {i}")[0] for i in range(12)]

    state = breaker(stack)
    assert state["state"] in ("OPEN", "HALF_OPEN"), state
    assert state["not_permitted_calls"] > 0, state
    fallbacks = lookup_counts(stack)
    assert fallbacks["last_good"] - before["last_good"] >= 12  # every upload, at least
    assert fallbacks["stub"] == before["stub"]  # the last good answer is young: no stub
    # Each fallback use is logged, with the source that served it.
    served = stack.logged("resource", "storage_lookup_fallback", source="last_good")
    assert served >= fallbacks["last_good"] - before["last_good"]
    assert_all_permanent(stack, ids)

    stack.storage.start().wait_healthy()
    restarted = time.monotonic()
    ids += upload_until_closed(stack, "restarted")
    record_property("seconds_to_closed_after_restart", round(time.monotonic() - restarted, 1))
    record_property("uploads", len(ids))
    assert_live_again(stack)
    assert_all_permanent(stack, ids)


def test_storage_frozen_only_the_first_calls_wait_for_the_timeout(
    stack: Stack, record_property: RecordProperty
) -> None:
    healthy = [timed_upload(stack, "healthy")[1] for _ in range(5)]
    stack.storage.signal(signal.SIGSTOP)
    frozen = [timed_upload(stack, f"frozen {i}") for i in range(12)]

    timeout = TIMEOUT_DURATION
    waited = [elapsed for _, elapsed in frozen if elapsed >= timeout]
    assert len(waited) <= BREAKER["MINIMUM_NUMBER_OF_CALLS"], [e for _, e in frozen]
    assert breaker(stack)["state"] == "OPEN"
    once_open = [elapsed for _, elapsed in frozen[-6:]]
    record_property("uploads_that_waited_for_the_timeout", len(waited))
    record_property("healthy_p50_ms", round(statistics.median(healthy) * 1000))
    record_property("open_p50_ms", round(statistics.median(once_open) * 1000))
    record_property("open_max_ms", round(max(once_open) * 1000))
    # Once OPEN no call waits for the timeout; how fast they are is bench/degraded.py's figure.
    assert max(once_open) < timeout

    stack.storage.signal(signal.SIGCONT)
    ids = [resource_id for resource_id, _ in frozen] + upload_until_closed(stack, "thawed")
    assert_live_again(stack)
    assert_all_permanent(stack, ids)


@pytest.mark.parametrize("fault", [Mode.HTTP_500, Mode.GARBAGE, Mode.CUT])
def test_storage_answering_errors_or_garbage_is_the_same_as_down(
    stack: Stack, storage_proxy: FaultProxy, fault: Mode
) -> None:
    storage_proxy.set_mode(fault)
    ids = [timed_upload(stack, f"{fault.value} {i}")[0] for i in range(8)]
    state = breaker(stack)
    assert state["state"] in ("OPEN", "HALF_OPEN"), state
    assert_all_permanent(stack, ids)

    storage_proxy.set_mode(Mode.PASS)
    ids += upload_until_closed(stack, "healed")
    assert_live_again(stack)
    assert_all_permanent(stack, ids)


def test_deleted_seed_rows_are_served_by_the_fallback(stack: Stack) -> None:
    storages = stack.http.get(f"{stack.storage.url}/storages").json()
    staging_ids = [s["id"] for s in storages if s["storageType"] == "STAGING"]
    deleted = stack.http.delete(
        f"{stack.storage.url}/storages?id={','.join(map(str, staging_ids))}",
        headers=stack.admin_headers,  # writing storages is management
    )
    assert deleted.json() == {"ids": staging_ids}
    before = lookup_counts(stack)
    fallback = {"source": "last_good", "storage_type": "STAGING"}
    logged = stack.logged("resource", "storage_lookup_fallback", **fallback)

    resource_id, _ = timed_upload(stack, "no staging row")

    after = lookup_counts(stack)
    # The live answer lacks STAGING: the last good answer (seen minutes ago at most) serves it.
    assert after["last_good"] == before["last_good"] + 1
    assert after["stub"] == before["stub"]
    assert stack.logged("resource", "storage_lookup_fallback", **fallback) == logged + 1
    row = stack.wait_permanent(resource_id, timeout=10)
    assert row.staging_bucket == "resources-staging"
    assert row.staging_key.startswith("staging/")
    # The PERMANENT row is still there: the move is served live.
    assert row.bucket == "resources-permanent"
    stack.storage.restart().wait_healthy()  # a restart seeds the missing row again
