"""Call through a breaker and fall back on any failure or rejection, saying which path served.

What the fallback returns (last-known-good, a stub, ...) is the service's business:

    served = await call_with_fallback(breaker, fetch_song, song_id, fallback=lambda error: STUB)
    if served.used_fallback:
        log.warning("song_served_from_fallback", reason=repr(served.error))
    return served.value
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from service_kit.resilience.breaker import CallNotPermittedError, CircuitBreaker
from service_kit.resilience.outcome import Outcome

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
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
    **kwargs: Any,
) -> Served[T]:
    """`await breaker.call(fn, *args, **kwargs)`; if the breaker rejects the call or it fails
    (as `breaker.classify` judges, in any state), return `fallback(error)` instead.

    `fallback` may be sync or async. Ignored errors (e.g. HTTP 4xx, cancellation) are not
    failures and still raise; so does an exception raised by the fallback itself.
    """
    try:
        return Served(await breaker.call(fn, *args, **kwargs), used_fallback=False)
    except CallNotPermittedError as rejection:
        error: BaseException = rejection
    except BaseException as failure:
        if breaker.classify(failure) is not Outcome.FAILURE:
            raise
        error = failure
    value = fallback(error)
    if inspect.isawaitable(value):
        value = await value
    return Served(value, used_fallback=True, error=error)
