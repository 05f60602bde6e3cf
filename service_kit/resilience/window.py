"""Sliding windows of recorded calls, with running totals so reading a rate is O(1).

`CountWindow`: the last N calls (Resilience4j's COUNT_BASED, `FixedSizeSlidingWindowMetrics`).
`TimeWindow`: the calls of the last N seconds, in one bucket per second (TIME_BASED,
`SlidingTimeWindowMetrics`). Both count failed, slow, and slow-and-failed calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_FAILED = 1
_SLOW = 2

NOT_ENOUGH_CALLS = -1.0
"""The rate reported before `minimum_number_of_calls` are recorded (Resilience4j's -1)."""


class _Rates:
    """Rates and the threshold check over the totals a window keeps."""

    __slots__ = ("capacity", "failed", "minimum", "size", "slow", "slow_failed")

    def __init__(self, capacity: int, minimum: int) -> None:
        self.capacity = capacity
        self.minimum = min(minimum, capacity)
        self.size = 0  # recorded calls currently in the window
        self.failed = 0
        self.slow = 0
        self.slow_failed = 0

    def _add(self, flags: int, sign: int) -> None:
        self.size += sign
        if flags:
            self.failed += sign * (flags & _FAILED)
            self.slow += sign * (flags >> 1)
            self.slow_failed += sign * (flags == _FAILED | _SLOW)

    def exceeds(self, failure_rate_threshold: float, slow_call_rate_threshold: float) -> bool:
        """True once enough calls are recorded and either rate is at or above its threshold."""
        self.expire()
        size = self.size
        return size >= self.minimum and (
            self.failed * 100 >= failure_rate_threshold * size
            or self.slow * 100 >= slow_call_rate_threshold * size
        )

    def expire(self) -> None:
        """Drop what fell out of the window by now (time-based windows only): call it before
        reading the totals (`size`, `failed`, ...); the rates call it themselves."""

    @property
    def failure_rate(self) -> float:
        """Percentage of failed calls, or `NOT_ENOUGH_CALLS` (-1.0)."""
        self.expire()
        return self.failed * 100 / self.size if self.size >= self.minimum else NOT_ENOUGH_CALLS

    @property
    def slow_call_rate(self) -> float:
        """Percentage of slow calls (failed or not), or `NOT_ENOUGH_CALLS` (-1.0)."""
        self.expire()
        return self.slow * 100 / self.size if self.size >= self.minimum else NOT_ENOUGH_CALLS


class CountWindow(_Rates):
    """A ring buffer of per-call flags (bit 0 failed, bit 1 slow)."""

    __slots__ = ("_next", "_slots")

    def __init__(self, capacity: int, minimum: int) -> None:
        super().__init__(capacity, minimum)
        self._slots = bytearray(capacity)
        self._next = 0

    def record(self, failed: bool, slow: bool) -> None:
        index = self._next
        if self.size == self.capacity:  # full: the oldest call drops out
            self._add(self._slots[index], -1)
        flags = failed | (slow << 1)
        self._slots[index] = flags
        self._add(flags, +1)
        index += 1
        self._next = 0 if index == self.capacity else index


class TimeWindow(_Rates):
    """The calls of the last `seconds` seconds, summed per whole second of the clock.

    As in Resilience4j, the minimum number of calls is not capped by the window: a time window
    holds any number of calls.
    """

    __slots__ = ("_buckets", "_clock", "_seconds")

    def __init__(self, seconds: int, minimum: int, clock: Callable[[], float]) -> None:
        super().__init__(capacity=math.inf, minimum=minimum)  # type: ignore[arg-type]
        self._seconds = seconds
        self._clock = clock
        # second -> [calls, failed, slow, slow and failed]
        self._buckets: dict[int, list[int]] = {}

    def record(self, failed: bool, slow: bool) -> None:
        self.expire()
        second = math.floor(self._clock())
        bucket = self._buckets.setdefault(second, [0, 0, 0, 0])
        flags = failed | (slow << 1)
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        bucket[3] += flags == _FAILED | _SLOW
        self._add(flags, +1)

    def expire(self) -> None:
        oldest = math.floor(self._clock()) - self._seconds + 1
        for second in [s for s in self._buckets if s < oldest]:
            calls, failed, slow, slow_failed = self._buckets.pop(second)
            self.size -= calls
            self.failed -= failed
            self.slow -= slow
            self.slow_failed -= slow_failed
