"""The worker's side of RabbitMQ: the health check and a drain on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from service_kit.messaging import is_connected
from service_kit.web import HealthCheck

log = structlog.get_logger(__name__)

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[Any]]


def broker_check(connection: AbstractRobustConnection) -> HealthCheck:
    """UP while the connection is open; DOWN when closed or while it is reconnecting."""

    async def check() -> dict[str, Any]:
        if not is_connected(connection):
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
