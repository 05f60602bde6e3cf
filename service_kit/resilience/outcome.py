"""How a finished call counts: as a failure, as a success, or not at all (ignored)."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

import httpx2


class Outcome(enum.Enum):
    SUCCESS = "successful"  # an error the dependency is not to blame for: counted as a success
    FAILURE = "failed"
    IGNORED = "ignored"  # neither success nor failure: the window does not see the call


Classifier = Callable[[BaseException], Outcome]
"""Decides how a call that raised counts. A call that returned is always a success, so an
httpx2 caller must `raise_for_status()` inside the guarded function for a 5xx to count."""


def default_classifier(error: BaseException) -> Outcome:
    """Dependency trouble is a failure; the caller's own mistakes and cancellations are ignored.

    - HTTP status errors (from `response.raise_for_status()`): 5xx fail, anything else (4xx:
      the request was wrong, not the server) is ignored;
    - timeouts (`TimeoutError`, `httpx2.TimeoutException`) and transport errors
      (`httpx2.TransportError`, `OSError`) fail;
    - cancellation and other non-`Exception`s (KeyboardInterrupt, SystemExit) are ignored;
    - any other exception fails, as in Resilience4j, where every exception is recorded.
    """
    if isinstance(error, httpx2.HTTPStatusError):
        return Outcome.FAILURE if error.response.status_code >= 500 else Outcome.IGNORED
    if isinstance(error, asyncio.CancelledError) or not isinstance(error, Exception):
        return Outcome.IGNORED
    return Outcome.FAILURE
