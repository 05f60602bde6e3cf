"""A stack whose Resource Service reaches the Storage Service through a fault proxy, with a
breaker tuned so that the tests watch it open and close within seconds."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.stack import Stack
from tests.fixture_types import StackStarter

TIMEOUT_DURATION = 0.5  # the TimeLimiter's, inside the breaker
BREAKER = {
    "WAIT_DURATION_IN_OPEN_STATE": 2.0,
    "MINIMUM_NUMBER_OF_CALLS": 4,
    "SLIDING_WINDOW_SIZE": 8,
    "PERMITTED_NUMBER_OF_CALLS_IN_HALF_OPEN_STATE": 2,
}


@pytest.fixture(scope="module")
def storage_proxy() -> Iterator[FaultProxy]:
    proxy = FaultProxy().start()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter, storage_proxy: FaultProxy) -> Stack:
    running = start_module_stack(
        "faults",
        resource_env={
            "STORAGE_SERVICE_URL": storage_proxy.url,
            **{f"STORAGE_BREAKER_{name}": str(value) for name, value in BREAKER.items()},
            "STORAGE_TIMELIMITER_TIMEOUT_DURATION": str(TIMEOUT_DURATION),
        },
    )
    storage_proxy.upstream_port = running.storage.port
    return running


@pytest.fixture(autouse=True)
def healthy_storage_after_each_test(stack: Stack, storage_proxy: FaultProxy) -> Iterator[None]:
    """Each test starts from a healthy Storage Service and a closed breaker."""
    yield
    storage_proxy.set_mode(Mode.PASS)
    storage = stack.storage
    if storage.process is not None and storage.process.poll() is None:
        storage.signal(signal.SIGCONT)
    else:
        storage.start()
    storage.wait_healthy()
    stack.http.post(
        f"{stack.resource.url}/admin/breakers/storage/close", headers=stack.admin_headers
    ).raise_for_status()


def breaker(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = stack.http.get(f"{stack.resource.url}/health").json()["checks"][
        "storageBreaker"
    ]
    return found


def lookup_counts(stack: Stack) -> dict[str, float]:
    """How many storage lookups each source (live, last_good, stub) has served so far."""
    metrics = stack.http.get(f"{stack.resource.url}/metrics").text
    found = re.findall(r'^storage_lookup_total\{source="(\w+)"\} ([0-9.e+]+)$', metrics, re.M)
    return {"live": 0.0, "last_good": 0.0, "stub": 0.0} | {k: float(v) for k, v in found}
