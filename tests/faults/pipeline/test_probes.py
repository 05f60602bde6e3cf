"""The probes (docs/contract.md §3): `/health/live` checks nothing but that the process serves;
`/health/ready` checks its own database only, so an open breaker with a fallback, or a broker
outage the outbox absorbs, leaves a service ready. Real faults: the proxies in front of the
Resource Service's PostgreSQL and RabbitMQ are cut."""

from __future__ import annotations

import httpx2

from devstack.testing.faultproxy import Mode
from devstack.testing.stack import Stack, wait_until
from tests.faults.pipeline.conftest import Proxies


def probe(stack: Stack, path: str) -> httpx2.Response:
    return stack.http.get(f"{stack.resource.url}{path}")


def test_every_service_is_live_and_ready_when_all_is_well(stack: Stack) -> None:
    for service in stack.services:
        for path in ("/health/live", "/health/ready"):
            reply = stack.http.get(f"{service.url}{path}")
            assert reply.status_code == 200, (service.package, path, reply.text)
            assert reply.json()["status"] == "UP"


def test_live_whatever_the_dependencies_and_not_ready_without_its_database(
    stack: Stack, proxies: Proxies
) -> None:
    proxies.postgres.set_mode(Mode.CUT)
    proxies.rabbitmq.set_mode(Mode.CUT)
    live = probe(stack, "/health/live")
    assert live.status_code == 200 and live.json() == {"status": "UP"}
    ready = probe(stack, "/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "DOWN", "checks": {"database": {"status": "DOWN"}}}
    assert probe(stack, "/health").status_code == 503


def test_still_ready_while_the_broker_is_down(stack: Stack, proxies: Proxies) -> None:
    proxies.rabbitmq.set_mode(Mode.CUT)
    wait_until(lambda: probe(stack, "/health").json()["checks"]["broker"]["status"] != "UP", 10)
    ready = probe(stack, "/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "UP"


def test_still_ready_while_the_breaker_is_open(stack: Stack) -> None:
    url = f"{stack.resource.url}/admin/breakers/storage"
    stack.http.post(f"{url}/force-open", headers=stack.admin_headers).raise_for_status()
    try:
        assert probe(stack, "/health").json()["status"] == "DEGRADED"
        ready = probe(stack, "/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "UP"
    finally:
        stack.http.post(f"{url}/close", headers=stack.admin_headers).raise_for_status()
