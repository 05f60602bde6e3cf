"""The retry policies the services share, on tenacity, and the one way a retry is logged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from tenacity import (
    RetryCallState,
    retry,
    retry_base,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

log = structlog.get_logger(__name__)

STARTUP_RETRY_SECONDS = 30


def retry_at_startup(
    retry_on: retry_base = retry_if_exception_type(Exception),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A start-up step (create the database, the buckets) that waits up to 30 s for its
    dependency, which may still be starting: 0.2 s, 0.4 s, ... up to 2 s between tries."""
    return retry(
        retry=retry_on,
        stop=stop_after_delay(STARTUP_RETRY_SECONDS),
        wait=wait_exponential(multiplier=0.2, max=2),
        before_sleep=log_retry("startup_step_retrying"),
        reraise=True,
    )


def log_retry(event: str, **fields: Any) -> Callable[[RetryCallState], None]:
    """A tenacity `before_sleep` callback: one warning per retry, with the error and the wait."""

    def log_attempt(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            event,
            **fields,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 3),
            error=repr(error)[:300],
        )

    return log_attempt
