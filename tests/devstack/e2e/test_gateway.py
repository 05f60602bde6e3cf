"""The front door (issue "One front door"): under a real `make run REPLICAS=2`, the public API
goes through the gateway, nothing else does, the request id reaches the services' logs, a
client that floods it gets 429 with Retry-After, and killing one of the two Resource Service
replicas midway fails no request.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import psutil
import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import wait_until
from tests.contract import assert_error
from tests.devstack.e2e.conftest import MakeRun


@pytest.fixture(scope="module")
def run(start_make_run: Callable[..., MakeRun]) -> MakeRun:
    return start_make_run(RUN_REPLICAS="2")  # the ports are the module's own (conftest)


@pytest.fixture
def door(run: MakeRun) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=run.programs["gateway"].url, timeout=30) as client:
        yield client


def upload(door: httpx2.Client, title: str, **headers: str) -> httpx2.Response:
    body = make_mp3(1, title=title)
    return door.post("/resources", content=body, headers={"Content-Type": "audio/mpeg", **headers})


def test_the_public_api_goes_through_the_front_door(door: httpx2.Client) -> None:
    answer = upload(door, "through the door")
    assert answer.status_code == 200, answer.text
    resource_id = answer.json()["id"]
    assert door.get(f"/resources/{resource_id}").content[:3] in (b"ID3", b"\xff\xfb")
    wait_until(lambda: door.get(f"/songs/{resource_id}").status_code == 200, 60, "song")
    assert door.get(f"/songs/{resource_id}").json()["name"] == "through the door"
    deleted = door.delete("/resources", params={"id": str(resource_id)})
    assert deleted.json() == {"ids": [resource_id]}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/songs"),
        ("DELETE", "/songs?id=1"),
        ("GET", "/storages"),
        ("POST", "/storages"),
        ("DELETE", "/storages?id=1"),
        ("GET", "/admin/breakers"),
        ("POST", "/admin/breakers/storage/force-open"),
        ("GET", "/metrics"),
        ("GET", "/health"),
        ("GET", "/health/ready"),
        ("GET", "/dashboard"),
        ("GET", "/docs"),
        ("GET", "/resources"),
        ("PUT", "/resources/1"),
    ],
)
def test_every_internal_route_is_refused_at_the_door(
    door: httpx2.Client, method: str, path: str
) -> None:
    answer = door.request(method, path, json={} if method in ("POST", "PUT") else None)
    assert answer.status_code in (403, 404)
    assert_error(answer, answer.status_code)
    assert answer.headers["x-request-id"]


def test_the_request_id_is_answered_and_in_the_service_and_gateway_logs(
    run: MakeRun, door: httpx2.Client
) -> None:
    request_id = f"e2e-{uuid.uuid4().hex}"
    answer = upload(door, "traced", **{"X-Request-ID": request_id})
    assert answer.status_code == 200 and answer.headers["x-request-id"] == request_id
    logs = run.settings.dir / "logs"

    def logged() -> bool:
        replicas = [logs / "resource-service.log", logs / "resource-service-2.log"]
        return any(request_id in log.read_text() for log in replicas if log.exists())

    wait_until(logged, 10, "the id in a Resource Service log line")

    def access_entries() -> list[dict[str, Any]]:
        lines = (logs / "gateway.log").read_text().splitlines()  # nginx's warnings are plain
        access = [json.loads(line) for line in lines if line.startswith("{")]
        return [line for line in access if line["request_id"] == request_id]

    # nginx writes the line once the answer is sent, a moment after the client has it.
    [entry] = wait_until(access_entries, 10, "the gateway's access log line")
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/resources", "200")
    generated = door.get("/songs/1").headers["x-request-id"]  # none sent: the door made one
    assert len(generated) == 32


def test_one_replica_killed_midway_fails_no_request(run: MakeRun, door: httpx2.Client) -> None:
    answers = []
    for n in range(12):
        if n == 4:  # SIGKILL, and gone: a request sent in the very instant is the one lost
            victim = psutil.Process(run.pid("resource-service"))
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        sent = upload(door, f"replica test {n}")
        answers.append(sent.status_code)
        if sent.status_code == 200:
            answers.append(door.get(f"/resources/{sent.json()['id']}").status_code)
    assert answers == [200] * len(answers)
    assert run.make("start", "SERVICE=resource-service").returncode == 0


def test_a_flooding_client_gets_429_with_retry_after(door: httpx2.Client) -> None:
    statuses = [door.get("/songs/999999999") for _ in range(400)]
    refused = [answer for answer in statuses if answer.status_code == 429]
    assert refused, [answer.status_code for answer in statuses][-5:]
    assert refused[0].headers["retry-after"] == "1"
    assert_error(refused[0], 429, "Too many requests, try again later")
    wait_until(lambda: door.get("/songs/999999999").status_code == 404, 10, "served again")
