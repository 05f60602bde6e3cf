"""A page that rebinds its own DNS name to 127.0.0.1 can make a developer's browser send
requests to the local API, with its own name as the Host header. Every service answers only
the names in ALLOWED_HOSTS (loopback by default); any other Host gets the contract's 400."""

from __future__ import annotations

import pytest

from devstack.testing.stack import Stack
from tests.contract import assert_error


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example"])
def test_a_foreign_host_header_is_refused_by_every_service(stack: Stack, host: str) -> None:
    for service in (stack.storage, stack.song, stack.resource, *stack.processors):
        response = stack.http.get(f"{service.url}/health", headers={"Host": host})
        assert_error(response, 400, "Invalid Host header")
    assert stack.logged("resource", "host_refused", host=host) >= 1


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_with_or_without_a_port_are_answered(stack: Stack, host: str) -> None:
    port = stack.resource.port
    for name in (host, f"{host}:{port}"):
        response = stack.http.get(f"{stack.resource.url}/health", headers={"Host": name})
        assert response.status_code == 200, (name, response.text)
