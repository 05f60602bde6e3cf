"""Count-based sliding window: the outcomes of the last N recorded calls, with running totals."""

from __future__ import annotations

_FAILED = 1

NOT_ENOUGH_CALLS = -1.0
"""The rate reported before `minimum_number_of_calls` are recorded (Resilience4j's -1)."""


class CountWindow:
    """A ring buffer of per-call flags; totals are kept up to date so reading a rate is O(1)."""

    __slots__ = ("_next", "_slots", "capacity", "failed", "minimum", "size", "slow")

    def __init__(self, capacity: int, minimum: int) -> None:
        self.capacity = capacity
        self.minimum = min(minimum, capacity)
        self._slots = bytearray(capacity)  # bit 0: failed, bit 1: slow
        self._next = 0
        self.size = 0  # recorded calls currently in the window
        self.failed = 0
        self.slow = 0

    def record(self, failed: bool, slow: bool) -> None:
        # Written for the common call, a fast success evicting another: no total changes.
        index = self._next
        slots = self._slots
        if self.size == self.capacity:  # full: the oldest call drops out
            evicted = slots[index]
            if evicted:
                self.failed -= evicted & _FAILED
                self.slow -= evicted >> 1
        else:
            self.size += 1
        if failed or slow:
            slots[index] = failed | (slow << 1)
            self.failed += failed
            self.slow += slow
        else:
            slots[index] = 0
        index += 1
        self._next = 0 if index == self.capacity else index

    def exceeds(self, failure_rate_threshold: float, slow_call_rate_threshold: float) -> bool:
        """True once enough calls are recorded and either rate is at or above its threshold."""
        size = self.size
        return size >= self.minimum and (
            self.failed * 100 >= failure_rate_threshold * size
            or self.slow * 100 >= slow_call_rate_threshold * size
        )

    @property
    def failure_rate(self) -> float:
        """Percentage of failed calls, or `NOT_ENOUGH_CALLS` (-1.0)."""
        return self.failed * 100 / self.size if self.size >= self.minimum else NOT_ENOUGH_CALLS

    @property
    def slow_call_rate(self) -> float:
        """Percentage of slow calls (failed or not), or `NOT_ENOUGH_CALLS` (-1.0)."""
        return self.slow * 100 / self.size if self.size >= self.minimum else NOT_ENOUGH_CALLS
