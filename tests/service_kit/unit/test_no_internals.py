"""No exception class name, message or traceback reaches a client: not in an error body, not in
`/health`. Every route's errors go through `service_kit.errors`; this walks the paths a request
can take there with a service whose route and health check fail in every way they can."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import psycopg
import pytest
from botocore.exceptions import ClientError
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service_kit.config import ServiceSettings
from service_kit.web import HealthCheck, create_service_app
from tests.contract import assert_error, assert_no_internals

SECRET = "password=hunter2"


class LeakyError(RuntimeError):
    pass


def raising(error: BaseException) -> HealthCheck:
    async def check() -> dict[str, Any]:
        raise error

    return check


@dataclass(frozen=True)
class Parts:
    health_checks: dict[str, HealthCheck]


@asynccontextmanager
async def failing_checks(settings: ServiceSettings) -> AsyncIterator[Parts]:
    yield Parts(
        health_checks={
            "database": raising(psycopg.OperationalError(f"connection failed: {SECRET}")),
            "s3": raising(ClientError({"Error": {"Code": "500", "Message": SECRET}}, "Get")),
            "broker": raising(LeakyError(SECRET)),
            "slow": raising(TimeoutError()),
        }
    )


class Body(BaseModel):
    name: str


router = APIRouter()
FAILURES: dict[str, BaseException] = {
    "unexpected": LeakyError(SECRET),
    "database": psycopg.OperationalError(SECRET),
    "s3": ClientError({"Error": {"Code": "SlowDown", "Message": SECRET}}, "PutObject"),
    "peer": httpx2.ConnectError(SECRET),
}


@router.get("/fail/{kind}")
def fail(kind: str) -> dict[str, Any]:
    raise FAILURES[kind]


@router.post("/things")
def create(body: Body) -> dict[str, Any]:
    return {"name": body.name}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_service_app("Leaky", ServiceSettings(port=1), failing_checks, [router])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_a_down_health_report_names_no_exception_and_no_message(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {
        "status": "DOWN",
        "checks": {name: {"status": "DOWN"} for name in ("database", "s3", "broker", "slow")},
    }
    assert_no_internals(response.text)
    assert SECRET not in response.text


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failing_route_answers_in_the_error_format_only(client: TestClient, kind: str) -> None:
    response = client.get(f"/fail/{kind}")
    assert response.status_code in (500, 503)
    assert_error(response, response.status_code)
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("POST", "/things", b"{not json", 400),
        ("POST", "/things", b'{"name": 1}', 400),
        ("POST", "/things", b"[]", 400),
        ("GET", "/nowhere", b"", 404),
        ("DELETE", "/things", b"", 405),
    ],
)
def test_every_rejection_answers_in_the_error_format_only(
    client: TestClient, method: str, path: str, content: bytes, status: int
) -> None:
    response = client.request(
        method, path, content=content, headers={"Content-Type": "application/json"}
    )
    assert_error(response, status)
