"""How much a circuit breaker adds to one `await fn()` of a trivial async function.

Run from the repository root:

    .venv/bin/python -m bench.breaker_overhead            # table
    .venv/bin/python -m bench.breaker_overhead --json     # list of result objects on stdout

Each case runs `--calls` calls per repetition; the figure is the median of `--repeats`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import circuitbreaker
import structlog
from prometheus_client import CollectorRegistry, Histogram

from bench.report import Figure, print_table, to_json
from service_kit.resilience import (
    BreakerSettings,
    CircuitBreaker,
    call_with_fallback,
)

TARGET_ADDED_US = 5.0
# Our layer's cases, closed and open with fallback: each must add at most TARGET_ADDED_US.
TARGETED = ("ours CLOSED", "ours OPEN + fallback")


async def trivial() -> int:
    return 1


async def time_per_call_us(call: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - started) / calls * 1e6


def build_cases() -> dict[str, Callable[[], Awaitable[object]]]:
    registry = CollectorRegistry()
    closed = CircuitBreaker("bench_closed")
    untimed = CircuitBreaker(
        "bench_closed_no_timeout", BreakerSettings.defaults(attempt_timeout=None)
    )
    opened = CircuitBreaker("bench_open")
    opened.force_open()
    legacy = circuitbreaker.circuit(name="bench_circuitbreaker")(trivial)
    histogram = Histogram("bench_seconds", "", ["name"], registry=registry).labels("bench")

    async def with_asyncio_timeout() -> int:  # what the breaker's shared deadline timer avoids
        async with asyncio.timeout(2.0):
            return await trivial()

    async def histogram_observe() -> int:
        histogram.observe(0.001)
        return await trivial()

    return {
        "bare await fn()": trivial,
        "circuitbreaker package": legacy,
        "ours CLOSED": lambda: closed.call(trivial),
        "ours CLOSED, attempt_timeout=None": lambda: untimed.call(trivial),
        "ours OPEN + fallback": lambda: call_with_fallback(opened, trivial, fallback=_stub),
        "bare + asyncio.timeout(2.0)": with_asyncio_timeout,
        "bare + prometheus Histogram.observe": histogram_observe,
    }


def _stub(_error: BaseException) -> int:
    return 0


async def measure(calls: int, repeats: int) -> dict[str, float]:
    cases = build_cases()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleave cases so drift hits all of them alike
        for name, call in cases.items():
            samples[name].append(await time_per_call_us(call, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def to_figures(medians: dict[str, float]) -> list[Figure]:
    baseline = medians["bare await fn()"]
    return [
        Figure(
            name,
            "us/call",
            value,
            baseline,
            target=f"added <= {TARGET_ADDED_US:g} us" if name in TARGETED else None,
            met=(value - baseline <= TARGET_ADDED_US) if name in TARGETED else None,
            group="breaker overhead",
            note=f"added {value - baseline:+.2f} us" if name != "bare await fn()" else "",
        )
        for name, value in medians.items()
    ]


def figures(calls: int = 100_000, repeats: int = 7) -> list[Figure]:
    """Every case's median time per call; the target applies to our layer's cases."""
    return to_figures(asyncio.run(measure(calls, repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON results to stdout")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # quiet
    results = figures(args.calls, args.repeats)
    if args.json:
        print(to_json(results))
    else:
        print_table(results, title="Breaker overhead per call")


if __name__ == "__main__":
    main()
