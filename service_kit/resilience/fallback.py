"""Call through a breaker and fall back on any failure or rejection, saying which path served.

What the fallback returns (last-known-good, a stub, ...) is the service's business:

    served = await call_with_fallback(breaker, fetch_song, song_id, fallback=lambda error: STUB)
    if served.used_fallback:
        log.warning("song_served_from_fallback", reason=repr(served.error))
    return served.value
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Generic, NamedTuple, TypeVar, cast

from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.retry import Retry
from service_kit.resilience.time_limiter import TimeLimiter

T = TypeVar("T")


class Served(NamedTuple, Generic[T]):
    value: T
    used_fallback: bool
    error: BaseException | None = None
    """Why the fallback was used: the `CallNotPermittedError` or the failure; else None."""


async def call_with_fallback(
    breaker: CircuitBreaker,
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    fallback: Callable[[BaseException], Awaitable[T] | T],
    retry: Retry | None = None,
    time_limiter: TimeLimiter | None = None,
    **kwargs: Any,
) -> Served[T]:
    """`await breaker.call(fn, *args, **kwargs)`; if the breaker rejects the call or it raises
    any `Exception`, in any state, return `fallback(error)` instead.

    This is the one place that decides when to fall back. As in Resilience4j's
    `Decorators.withFallback`, how the breaker *counts* an error (a 4xx is ignored by the
    window) does not decide whether the caller gets an answer: it does. Cancellation and other
    non-`Exception`s still raise, and so does an exception raised by the fallback itself.
    `fallback` may be a plain function or an `async def` one.

    The decorators go in Resilience4j's documented order, fallback(Retry(CircuitBreaker(
    TimeLimiter(fn)))): each attempt of a `retry` is a call through the breaker, and the
    breaker records a call the `time_limiter` cut short as a failure.
    """
    if time_limiter is not None:
        fn = functools.partial(time_limiter.call, fn)
    if retry is not None:
        try:
            return Served(await retry.call(breaker.call, fn, *args, **kwargs), False)
        except Exception as failure:
            return await _served_by_fallback(fallback, failure)
    token = breaker.permit()
    error: Exception
    if token is None:  # rejected: an answer without raising, the cheap path while OPEN
        error = breaker.rejection()
    else:
        try:
            return Served(await breaker.call_permitted(token, fn, *args, **kwargs), False)
        except Exception as failure:
            error = failure
    return await _served_by_fallback(fallback, error)


async def _served_by_fallback(
    fallback: Callable[[BaseException], Awaitable[T] | T], error: Exception
) -> Served[T]:
    value = fallback(error)
    if inspect.iscoroutine(value):
        value = await value
    return Served(cast(T, value), used_fallback=True, error=error)
