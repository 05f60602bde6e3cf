"""Blocking work on a thread pool of its own, in the caller's context."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def run_in(
    threads: Executor | None, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> asyncio.Future[T]:
    """`fn(*args)` on `threads` (asyncio's default pool for None), carrying the caller's context
    variables: its span, so that SQL and S3 spans join the request's trace, and its log fields.
    `run_in_executor` carries none; `asyncio.to_thread` does, but only on the default pool."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return asyncio.get_running_loop().run_in_executor(threads, call)
