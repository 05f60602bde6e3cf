"""The worker's side of RabbitMQ: connecting at start, the health check, a drain on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from aiormq.exceptions import AMQPConnectionError, ProbableAuthenticationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from service_kit.web import HealthCheck

log = structlog.get_logger(__name__)

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[Any]]


async def connect_broker(url: str, give_up_after_seconds: float) -> AbstractRobustConnection:
    """Connect, retrying while RabbitMQ is unreachable (it may still be starting); once connected,
    `connect_robust` reconnects and restores the consumer by itself."""
    retrying = AsyncRetrying(
        stop=stop_after_delay(give_up_after_seconds),
        wait=wait_exponential_jitter(multiplier=0.5, max=5.0, jitter=0.5),
        retry=retry_if_exception(_is_unreachable),
        before_sleep=_log_connect_retry,
        reraise=True,
    )
    return await retrying(aio_pika.connect_robust, url, timeout=5)


def _is_unreachable(error: BaseException) -> bool:
    # Wrong credentials will not fix themselves: fail the start at once.
    if isinstance(error, ProbableAuthenticationError):
        return False
    return isinstance(error, AMQPConnectionError | OSError | TimeoutError)


def _log_connect_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("broker_connect_retrying", attempt=state.attempt_number, error=repr(error)[:300])


def broker_check(connection: AbstractRobustConnection) -> HealthCheck:
    """UP while the connection is open; DOWN when closed or while it is reconnecting."""

    async def check() -> dict[str, Any]:
        connected = getattr(connection, "connected", None)  # an Event on aio-pika's connections
        if connection.is_closed or (connected is not None and not connected.is_set()):
            raise ConnectionError("not connected to RabbitMQ")
        return {"status": "UP"}

    return check


class MessagesInFlight:
    """Lets shutdown wait for handlers already running instead of cutting them off mid-work."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, on_message: OnMessage) -> OnMessage:
        async def tracked(message: AbstractIncomingMessage) -> None:
            self._count += 1
            self._idle.clear()
            try:
                await on_message(message)
            finally:
                self._count -= 1
                if self._count == 0:
                    self._idle.set()

        return tracked

    async def wait_idle(self, grace_seconds: float) -> None:
        # What is still running after the grace period is redelivered: delivery is at least once.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
        if self._count:
            log.warning("shutdown_with_messages_in_flight", count=self._count)
