"""What our circuit breaker costs per call of a trivial async function, as a ratio to the
`circuitbreaker` package doing the same in the same run (a time in µs moves with the machine's
mood: the same code measured 1.81 µs one day and 4.5 µs another; the ratio holds still).

Run from the repository root:

    .venv/bin/python -m bench.breaker_overhead            # table
    .venv/bin/python -m bench.breaker_overhead --json     # list of result objects on stdout

Each case runs `--calls` calls per repetition, cases interleaved; the figure is the median of
`--repeats`. Both breakers are used the same way, as a decorated `async def`.
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

# Our case -> (the package's case it is held against, the largest ratio allowed).
TARGETS = {
    "ours CLOSED": ("circuitbreaker package CLOSED", 1.5),
    "ours OPEN + fallback": ("circuitbreaker package OPEN + fallback", 2.0),
}


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
    package_closed = circuitbreaker.circuit(name="bench_package_closed")(trivial)
    package_open_breaker = circuitbreaker.CircuitBreaker(
        name="bench_package_open", fallback_function=_async_stub
    )
    package_open = package_open_breaker(trivial)
    package_open_breaker._state = circuitbreaker.STATE_OPEN  # no public way to open it
    package_open_breaker._opened = time.monotonic()  # for its 30 s recovery timeout
    histogram = Histogram("bench_seconds", "", ["name"], registry=registry).labels("bench")

    async def ours_open() -> int:  # the shape of the package's decorated fallback call
        return (await call_with_fallback(opened, trivial, fallback=_stub)).value

    async def with_asyncio_timeout() -> int:  # what the breaker's shared deadline timer avoids
        async with asyncio.timeout(2.0):
            return await trivial()

    async def histogram_observe() -> int:
        histogram.observe(0.001)
        return await trivial()

    return {
        "bare await fn()": trivial,
        "circuitbreaker package CLOSED": package_closed,
        "ours CLOSED": closed(trivial),
        "ours CLOSED, attempt_timeout=None": untimed(trivial),
        "circuitbreaker package OPEN + fallback": package_open,
        "ours OPEN + fallback": ours_open,
        "bare + asyncio.timeout(2.0)": with_asyncio_timeout,
        "bare + prometheus Histogram.observe": histogram_observe,
    }


def _stub(_error: BaseException) -> int:
    return 0


async def _async_stub() -> int:
    return 0


async def measure(calls: int, repeats: int) -> dict[str, float]:
    cases = build_cases()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleave cases so drift hits all of them alike
        for name, call in cases.items():
            samples[name].append(await time_per_call_us(call, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def to_figures(medians: dict[str, float]) -> list[Figure]:
    """Our targeted cases against the package's; the others against a bare await, for context."""
    figures = []
    for name, value in medians.items():
        baseline_name, limit = TARGETS.get(name, ("bare await fn()", None))
        baseline = medians[baseline_name]
        figures.append(
            Figure(
                name,
                "us/call",
                value,
                baseline if name != baseline_name else None,
                target=None if limit is None else f"<= {limit:g} x {baseline_name}",
                met=None if limit is None else value <= limit * baseline,
                group="breaker cost",
                note="" if limit is not None or name == baseline_name else "baseline: bare await",
            )
        )
    return figures


def figures(calls: int = 20_000, repeats: int = 31) -> list[Figure]:
    """Every case's median time per call; the targets are ratios to the package's."""
    return to_figures(asyncio.run(measure(calls, repeats)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Many short rounds: a machine that changes pace mid-run moves every case's median alike.
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=31)
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
