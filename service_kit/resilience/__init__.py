"""Resilience4j-style circuit breaking for async calls (see `breaker.py` for why it is ours).

from service_kit.resilience import BreakerSettings, CircuitBreaker, call_with_fallback

storage = CircuitBreaker("storage", BreakerSettings.from_env("STORAGE_BREAKER_"))

async def fetch(key: str) -> bytes:
    response = await client.get(f"/objects/{key}")
    response.raise_for_status()  # only exceptions are classified: 5xx must raise to count
    return response.content

content = await storage.call(fetch, key)  # may raise CallNotPermittedError (or fetch's error)
served = await call_with_fallback(storage, fetch, key, fallback=lambda error: b"")
"""

from service_kit.resilience.breaker import CircuitBreaker
from service_kit.resilience.config import BreakerSettings
from service_kit.resilience.fallback import Served, call_with_fallback
from service_kit.resilience.outcome import Classifier, Outcome, default_classifier
from service_kit.resilience.state import (
    CallNotPermittedError,
    State,
    TransitionEvent,
    TransitionListener,
)
from service_kit.resilience.window import NOT_ENOUGH_CALLS

__all__ = [
    "NOT_ENOUGH_CALLS",
    "BreakerSettings",
    "CallNotPermittedError",
    "CircuitBreaker",
    "Classifier",
    "Outcome",
    "Served",
    "State",
    "TransitionEvent",
    "TransitionListener",
    "call_with_fallback",
    "default_classifier",
]
