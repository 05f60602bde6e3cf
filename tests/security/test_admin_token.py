"""Management behind a token (docs/contract.md §3): `/admin/*` needs `Authorization: Bearer
<ADMIN_TOKEN>`; without it nothing changes, and the token never reaches a log."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from devstack.testing.stack import Stack
from service_kit.deps import ServiceState
from service_kit.errors import install_error_handlers
from service_kit.resilience import BreakerSettings, CircuitBreaker
from service_kit.resilience.admin import breaker_admin_router
from tests.contract import assert_error

FORCE_OPEN = "/admin/breakers/storage/force-open"


def breaker_state(stack: Stack) -> str:
    health = stack.http.get(f"{stack.resource.url}/health").json()
    return str(health["checks"]["storageBreaker"]["state"])


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Management needs Authorization: Bearer <ADMIN_TOKEN>"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, None),
        ({"Authorization": "Bearer"}, 401, None),
        ({"Authorization": "Bearer made-up-token"}, 403, "The admin token is not valid"),
    ],
    ids=["none", "basic", "empty", "made-up"],
)
def test_no_management_action_without_the_token(
    stack: Stack, headers: dict[str, str], status: int, message: str | None
) -> None:
    for method, path in (("POST", FORCE_OPEN), ("POST", "/admin/breakers/storage/disable"),
                         ("GET", "/admin/breakers")):  # fmt: skip
        response = stack.http.request(method, f"{stack.resource.url}{path}", headers=headers)
        assert_error(response, status, message)
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert breaker_state(stack) == "CLOSED"


def test_the_right_token_changes_the_breaker_and_the_refusals_are_logged_without_tokens(
    stack: Stack,
) -> None:
    stack.http.post(f"{stack.resource.url}{FORCE_OPEN}", headers={"Authorization": "Bearer x1y2"})
    try:
        forced = stack.http.post(f"{stack.resource.url}{FORCE_OPEN}", headers=stack.admin_headers)
        assert forced.status_code == 200, forced.text
        assert breaker_state(stack) == "FORCED_OPEN"
    finally:
        closed = stack.http.post(
            f"{stack.resource.url}/admin/breakers/storage/close", headers=stack.admin_headers
        )
    assert closed.json()["state"] == "CLOSED"
    assert stack.logged("resource", "admin_refused", reason="wrong token", path=FORCE_OPEN) >= 1
    log = (stack.log_dir / "resource.log").read_text()
    assert "x1y2" not in log
    assert stack.admin_token not in log


def test_health_and_metrics_stay_open(stack: Stack) -> None:
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        assert stack.http.get(f"{stack.resource.url}{path}").status_code == 200, path


def test_with_no_admin_token_configured_management_is_refused_to_everyone() -> None:
    """In process: only the admin router and the error handlers, as the service mounts them."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(breaker_admin_router())
    parts = BreakerParts({"storage": CircuitBreaker("storage", BreakerSettings())})
    for configured in (None, SecretStr("the-token")):
        app.state.service = ServiceState(admin_token=configured, parts=parts)
        with TestClient(app) as client:
            response = client.post(FORCE_OPEN, headers={"Authorization": "Bearer the-token"})
        if configured is None:
            assert_error(response, 403, "Management is disabled: no ADMIN_TOKEN is configured")
        else:
            assert response.status_code == 200
    assert parts.breakers["storage"].state.name == "FORCED_OPEN"


@dataclass
class BreakerParts:
    """A composition root's parts with breakers only: what the admin router needs."""

    breakers: dict[str, CircuitBreaker]


STORAGE_WRITES = [
    ("POST", "/storages", {"storageType": "STAGING", "bucket": "resources-staging", "path": "/x/"}),
    ("DELETE", "/storages?id=1,2", None),
]


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Management needs Authorization: Bearer <ADMIN_TOKEN>"),
        ({"Authorization": "Bearer made-up-token"}, 403, "The admin token is not valid"),
    ],
    ids=["none", "made-up"],
)
def test_writing_storages_needs_the_admin_token_and_reading_them_does_not(
    stack: Stack, headers: dict[str, str], status: int, message: str | None
) -> None:
    """Where every upload and move goes is management (docs/contract.md §3): deleting the seed rows
    and posting one would redirect the platform. Without the token nothing is written."""
    before = stack.http.get(f"{stack.storage.url}/storages")
    assert before.status_code == 200  # reading stays open
    for method, path, body in STORAGE_WRITES:
        response = stack.http.request(
            method, f"{stack.storage.url}{path}", json=body, headers=headers
        )
        assert_error(response, status, message)
    assert stack.http.get(f"{stack.storage.url}/storages").json() == before.json()


def test_the_admin_token_writes_storages(stack: Stack) -> None:
    created = stack.http.post(
        f"{stack.storage.url}/storages",
        json={"storageType": "PERMANENT", "bucket": "resources-permanent", "path": "/admin-x/"},
        headers=stack.admin_headers,
    )
    assert created.status_code == 200, created.text
    deleted = stack.http.delete(
        f"{stack.storage.url}/storages",
        params={"id": created.json()["id"]},
        headers=stack.admin_headers,
    )
    assert deleted.json() == {"ids": [created.json()["id"]]}
