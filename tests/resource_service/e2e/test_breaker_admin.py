"""The breaker admin endpoint: list with settings, force-open (fallback serves), close, disable;
and the events of the other decorators around an upload, as Actuator lists them."""

from typing import Any

import httpx2

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from tests.contract import assert_error


def admin(stack: Stack, path: str = "") -> str:
    return f"{stack.resource.url}/admin/breakers{path}"


def admin_get(stack: Stack) -> httpx2.Response:
    return stack.http.get(admin(stack), headers=stack.admin_headers)


def admin_post(stack: Stack, path: str) -> httpx2.Response:
    return stack.http.post(admin(stack, path), headers=stack.admin_headers)


def storage_breaker(stack: Stack) -> dict[str, Any]:
    found: dict[str, Any] = stack.http.get(f"{stack.resource.url}/health").json()["checks"][
        "storageBreaker"
    ]
    return found


def test_breakers_are_listed_with_their_settings(stack: Stack) -> None:
    [listed] = admin_get(stack).json()
    assert listed["name"] == "storage"
    assert listed["settings"]["minimum_number_of_calls"] == 5
    assert listed["settings"]["wait_duration_in_open_state"] == 5.0


def events_of(stack: Stack, family: str, name: str) -> list[dict[str, Any]]:
    """`GET /admin/{family}/{name}/events` (Actuator's `retryevents`, `timelimiterevents`,
    `bulkheadevents`)."""
    answer = stack.http.get(
        f"{stack.resource.url}/admin/{family}/{name}/events", headers=stack.admin_headers
    )
    assert answer.status_code == 200, answer.text
    events: dict[str, list[dict[str, Any]]] = answer.json()
    [found] = events.values()
    return found


def test_an_upload_leaves_its_time_limiter_and_bulkhead_events(stack: Stack) -> None:
    stack.upload(make_mp3(1)).raise_for_status()
    limited = events_of(stack, "timelimiters", "storage")
    assert limited[-1]["timeLimiterName"] == "storage"
    assert limited[-1]["type"] == "SUCCESS"
    slots = [e["type"] for e in events_of(stack, "bulkheads", "uploads")]
    assert slots[-2:] == ["CALL_PERMITTED", "CALL_FINISHED"]
    assert events_of(stack, "retries", "storage") == []  # one attempt by default, nothing retried
    answer = stack.http.get(f"{stack.resource.url}/admin/retries/nope/events")
    assert answer.status_code == 401  # the admin token guards them as it guards the breakers
    assert_error(
        stack.http.get(
            f"{stack.resource.url}/admin/retries/nope/events", headers=stack.admin_headers
        ),
        404,
        "Retry 'nope' not found",
    )


def test_forced_open_uploads_are_served_by_the_fallback_and_health_is_degraded(
    stack: Stack,
) -> None:
    try:
        forced = admin_post(stack, "/storage/force-open").json()
        assert forced["state"] == "FORCED_OPEN"
        health = stack.http.get(f"{stack.resource.url}/health")
        assert health.status_code == 200
        assert health.json()["status"] == "DEGRADED"
        assert storage_breaker(stack)["status"] == "DEGRADED"
        before = storage_breaker(stack)["not_permitted_calls"]
        resource_id = stack.upload(make_mp3(1)).json()["id"]
        assert storage_breaker(stack)["not_permitted_calls"] > before
        stack.wait_permanent(resource_id, timeout=10)
    finally:
        closed = admin_post(stack, "/storage/close").json()
    assert closed["state"] == "CLOSED"
    wait_until(lambda: stack.http.get(f"{stack.resource.url}/health").json()["status"] == "UP", 5)


def test_disabled_breaker_reports_up(stack: Stack) -> None:
    try:
        assert admin_post(stack, "/storage/disable").json()["state"] == "DISABLED"
        assert storage_breaker(stack)["status"] == "UP"
    finally:
        admin_post(stack, "/storage/close")


def test_unknown_breaker_or_action(stack: Stack) -> None:
    assert_error(
        admin_post(stack, "/nope/close"),
        404,
        "Circuit breaker 'nope' not found",
    )
    assert_error(admin_post(stack, "/storage/explode"), 404)  # no such route
