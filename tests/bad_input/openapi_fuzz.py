"""What every schemathesis run over a service's OpenAPI shares: settings, calls, the error check."""

from __future__ import annotations

from typing import Any

import httpx2
from hypothesis import HealthCheck, settings
from schemathesis import Case

from tests.contract import assert_error

# Modest and reproducible: the same examples on every run, no per-example deadline.
FUZZ_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def send(
    client: httpx2.Client, case: Case[Any], base_url: str = "http://testserver"
) -> httpx2.Response:
    """Send `case` with an httpx2 client: a TestClient (its lifespan entered) or a real one."""
    kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=base_url)
    # schemathesis serialises for `requests`; httpx2 takes raw bytes as `content`.
    if "data" in kwargs and not isinstance(kwargs["data"], dict):
        kwargs["content"] = kwargs.pop("data")
    client.cookies = kwargs.pop("cookies", None) or {}
    return client.request(**kwargs)


def check_response(case: Case[Any], response: httpx2.Response) -> None:
    """Every schemathesis check (no 5xx, documented status, content type and schema, ...), then
    the contract's error format on every 4xx."""
    case.validate_response(response)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert_contract_error(response)


def assert_contract_error(response: httpx2.Response) -> dict[str, Any]:
    """docs/contract.md §3: {"errorMessage": str, "errorCode": "<status>"} plus `details` of str ->
    str."""
    body = assert_error(response, response.status_code)
    details = body.get("details", {})
    assert isinstance(details, dict), body
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in details.items()), body
    return body
