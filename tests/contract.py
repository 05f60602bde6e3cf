"""Assertions on the contract's error format (docs/contract.md §3), shared by every service's
tests."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

# What must never reach a client (docs/contract.md §3): an exception class name, a traceback, a
# source file.
INTERNALS = re.compile(r"[A-Z][A-Za-z]*(Error|Exception)\b|Traceback|File \"|\w\.py\b")


class ResponseLike(Protocol):
    """What the checks read of a response: httpx2's, or one parsed off a raw socket."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    def json(self) -> Any: ...


def assert_no_internals(text: str) -> None:
    found = INTERNALS.search(text)
    assert found is None, f"{found.group(0)!r} reaches the client: {text[:500]}"


def assert_error(response: ResponseLike, status: int, message: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert_no_internals(response.text)
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["errorCode"] == str(status)
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    assert set(body) <= {"errorMessage", "errorCode", "details"}
    if message is not None:
        assert body["errorMessage"] == message
    return body


def assert_validation_error(response: ResponseLike, details: dict[str, str]) -> None:
    body = assert_error(response, 400)
    assert body["details"] == details


ID_RULE_CASES = [
    # (query string, message)
    ("id=1,a", "Invalid ID format: 'a'. Only positive integers are allowed"),
    ("id=", "Invalid ID format: ''. Only positive integers are allowed"),
    ("id=1,2,", "Invalid ID format: ''. Only positive integers are allowed"),
    ("id=1,%202", "Invalid ID format: ' 2'. Only positive integers are allowed"),
    ("id=-1", "Invalid ID format: '-1'. Only positive integers are allowed"),
    ("id=" + "1" * 201, "CSV string is too long: received 201 characters, maximum allowed is 200"),
]

# Out of range too: past a BIGINT, and past the 4300 digits int() converts (a 500 once).
BAD_PATH_IDS = ["ABC", "1.1", "-1", "0", "9" * 30, "1" * 4301]
