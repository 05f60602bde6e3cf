"""Resilience4j's `IntervalFunction`: how long to wait before attempt N, shared by the breaker's
wait in OPEN and Retry's wait between attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class IntervalFunction:
    """`initial` seconds, times `multiplier` for each attempt after the first (None: constant),
    at most `max_interval`; then drawn from [1 - factor, 1 + factor] times that when
    `randomization_factor` is set (`ofExponentialRandomBackoff`)."""

    initial: float
    multiplier: float | None = None
    max_interval: float | None = None
    randomization_factor: float | None = None

    def __call__(self, attempt: int, rng: random.Random) -> float:
        """The interval before attempt `attempt + 1` (`attempt` counts from 1)."""
        wait = self.initial
        if self.multiplier is not None:
            wait *= self.multiplier ** (attempt - 1)
            if self.max_interval is not None:
                wait = min(wait, self.max_interval)
        if self.randomization_factor is not None:
            factor = self.randomization_factor
            wait *= rng.uniform(1 - factor, 1 + factor)
        return wait


class BackoffSettings(Protocol):
    """The backoff switches the breaker's and Retry's settings share, as Spring Boot's
    Resilience4j properties name them."""

    @property
    def enable_exponential_backoff(self) -> bool: ...
    @property
    def exponential_backoff_multiplier(self) -> float: ...
    @property
    def enable_randomized_wait(self) -> bool: ...
    @property
    def randomized_wait_factor(self) -> float: ...


def interval_of(
    settings: BackoffSettings, initial: float, max_interval: float | None
) -> IntervalFunction:
    exponential = settings.enable_exponential_backoff
    randomized = settings.enable_randomized_wait
    return IntervalFunction(
        initial,
        settings.exponential_backoff_multiplier if exponential else None,
        max_interval,
        settings.randomized_wait_factor if randomized else None,
    )
