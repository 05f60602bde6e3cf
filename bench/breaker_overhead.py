"""What our circuit breaker costs per call, as a share of the call it protects: the added time
of a CLOSED breaker and its TimeLimiter around a trivial `async def` (against a bare `await`),
divided by one loopback `GET /storages` (httpx2 to a uvicorn server in this process answering the
seed rows), all measured in the same run. Target: at most 1 %. The ratio to the
`circuitbreaker` package doing the same stays in the report, for context, without a target.

Run from the repository root:

    .venv/bin/python -m bench.breaker_overhead            # table
    .venv/bin/python -m bench.breaker_overhead --json     # list of result objects on stdout

Each case runs `--calls` calls per repetition, cases interleaved; the figure is the median of
`--repeats`. Both breakers are used the same way, as a decorated `async def`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import circuitbreaker
import httpx2
import structlog
import uvicorn
from prometheus_client import CollectorRegistry, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.report import Figure, print_table, to_json
from service_kit.resilience import CircuitBreaker, call_with_fallback
from service_kit.resilience.time_limiter import TimeLimiter, TimeLimiterSettings

# Our case -> the package's case it is compared with (no target: the share below is the one).
COMPARED = {
    "ours CLOSED": "circuitbreaker package CLOSED",
    "ours OPEN + fallback": "circuitbreaker package OPEN + fallback",
}
SHARE_TARGET_PERCENT = 1.0
STORAGES = (
    b'[{"id":1,"storageType":"STAGING","bucket":"resources-staging","path":"/staging/"},'
    b'{"id":2,"storageType":"PERMANENT","bucket":"resources-permanent","path":"/permanent/"}]'
)


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
    limiter = TimeLimiter("bench", TimeLimiterSettings(timeout_duration=2.0))
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

    async def with_asyncio_timeout() -> int:  # the TimeLimiter's deadline, alone
        async with asyncio.timeout(2.0):
            return await trivial()

    async def histogram_observe() -> int:
        histogram.observe(0.001)
        return await trivial()

    return {
        "bare await fn()": trivial,
        "circuitbreaker package CLOSED": package_closed,
        "ours CLOSED": functools.partial(closed.call, limiter.call, trivial),
        "ours CLOSED, no TimeLimiter": closed(trivial),
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


def to_figures(medians: dict[str, float], get_us: float) -> list[Figure]:
    """The share of a loopback GET, with its target; every case for context."""
    bare = medians["bare await fn()"]
    added = medians["ours CLOSED"] - bare
    share = added / get_us * 100
    figures = [
        Figure(
            "ours CLOSED, share of a loopback GET /storages",
            "%",
            share,
            target=f"<= {SHARE_TARGET_PERCENT:g} %",
            met=share <= SHARE_TARGET_PERCENT,
            group="breaker cost",
            note=f"{added:.2f} us added per call over {get_us:.0f} us per GET",
        ),
        Figure("loopback GET /storages", "us/call", get_us, group="breaker cost"),
    ]
    for name, value in medians.items():
        baseline_name = COMPARED.get(name, "bare await fn()")
        figures.append(
            Figure(
                name,
                "us/call",
                value,
                medians[baseline_name] if name != baseline_name else None,
                group="breaker cost",
                note="" if name == baseline_name else f"baseline: {baseline_name}",
            )
        )
    return figures


async def loopback_get_us(calls: int, repeats: int) -> float:
    """The median time of one `GET /storages` to a server on loopback, as the lookup makes it."""
    app = Starlette(routes=[Route("/storages", _storages)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110  # uvicorn offers no event to wait on
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    samples = []
    async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(calls):
                (await client.get("/storages")).raise_for_status()
            samples.append((time.perf_counter() - started) / calls * 1e6)
    server.should_exit = True
    await serving
    return statistics.median(samples)


async def _storages(_request: Request) -> Response:
    return Response(STORAGES, media_type="application/json")


def figures(calls: int = 20_000, repeats: int = 31) -> list[Figure]:
    """Every case's median time per call, and the breaker's share of a loopback GET."""
    medians = asyncio.run(measure(calls, repeats))
    get_us = asyncio.run(loopback_get_us(max(50, calls // 100), repeats))
    return to_figures(medians, get_us)


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
