"""`X-Request-ID` (issue "One front door", item 3): the id the gateway sets is in every log line
of the request and in the answer; a request without one, or with one that is not a plain token,
gets one of ours."""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service_kit.web import RequestId


def app() -> FastAPI:
    made = FastAPI()
    made.add_middleware(RequestId)

    @made.get("/where")
    async def where() -> dict[str, str]:
        return {"logged_as": structlog.contextvars.get_contextvars()["request_id"]}

    return made


def test_the_gateways_id_is_logged_and_answered() -> None:
    answer = TestClient(app()).get("/where", headers={"X-Request-ID": "gw-4f2a.1"})
    assert answer.json() == {"logged_as": "gw-4f2a.1"}
    assert answer.headers["x-request-id"] == "gw-4f2a.1"


def test_without_one_a_request_gets_one_of_ours() -> None:
    client = TestClient(app())
    first, second = client.get("/where"), client.get("/where")
    assert first.headers["x-request-id"] == first.json()["logged_as"]
    assert len(first.headers["x-request-id"]) == 32
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_an_id_that_is_not_a_plain_token_never_reaches_the_log() -> None:
    sent = 'x" injected="1'
    answer = TestClient(app()).get("/where", headers={"X-Request-ID": sent})
    assert answer.json()["logged_as"] != sent
    assert answer.headers["x-request-id"] == answer.json()["logged_as"]
    assert structlog.contextvars.get_contextvars().get("request_id") is None  # not left bound
