"""A caller's cancellation in the middle of a guarded call, shared by the decorators' tests."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest


async def cancel_midway(call: Coroutine[Any, Any, object], after: float = 0.0) -> None:
    """Start `call`, cancel it `after` seconds in, and check the cancellation reaches us."""
    task = asyncio.create_task(call)
    await asyncio.sleep(after)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
