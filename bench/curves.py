"""How the cost of a transfer grows: throughput and p50/p99 latency of uploads and downloads
through the Resource Service against file size (100 KB to 200 MB, with direct put/get beside
them) and against concurrent clients (1 to 64, 1 MB files). Plotted to images/bench-*.png.

The transfer stack runs with MAX_CONCURRENT_UPLOADS = 64 (`bench.env`), so that the curve shows
the service's pace and not its bulkhead's refusals.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx2

from bench.payloads import MB, READ_CHUNK, delete, download, mp3_bytes, timed, upload
from bench.plots import two_panels
from bench.report import Figure, median, percentile
from devstack.testing.stack import Stack
from service_kit.s3 import S3Client

BUCKET = "resources-staging"
SIZES = {100_000: 30, 1 * MB: 20, 10 * MB: 8, 50 * MB: 3, 200 * MB: 2}  # size -> repetitions
CLIENTS = (1, 4, 16, 64)
CONCURRENCY_FILE = 1 * MB
REQUESTS_PER_CLIENT = 4


def by_size(stack: Stack, s3: S3Client) -> dict[str, dict[int, list[float]]]:
    """way -> size -> seconds of each transfer."""
    seconds: dict[str, dict[int, list[float]]] = {}
    for size, repeats in SIZES.items():
        for way, times in _one_size(stack, s3, size, repeats).items():
            seconds.setdefault(way, {})[size] = times
    return seconds


def _one_size(stack: Stack, s3: S3Client, size: int, repeats: int) -> dict[str, list[float]]:
    data = mp3_bytes(size)
    key = f"bench/{uuid.uuid4()}.mp3"
    ids: list[int] = []
    ways: dict[str, Callable[[], object]] = {
        "service upload": lambda: ids.append(upload(stack, data)),
        "direct put_object": lambda: s3.put_object(Bucket=BUCKET, Key=key, Body=data),
        "service download": lambda: download(stack, ids[0]),
        "direct get_object": lambda: sum(
            map(len, s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(READ_CHUNK))
        ),
    }
    seconds: dict[str, list[float]] = {}
    try:
        for way, call in ways.items():
            call()  # warm-up, and the object the downloads read
            seconds[way] = [timed(call)[0] for _ in range(repeats)]
    finally:
        s3.delete_object(Bucket=BUCKET, Key=key)
        delete(stack, ids)
    return seconds


async def _concurrent(
    stack: Stack, clients: int, data: bytes, download_id: int | None
) -> tuple[float, list[float], list[int]]:
    """(seconds for the whole burst, seconds of each request, ids uploaded)."""
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    ids: list[int] = []
    async with httpx2.AsyncClient(base_url=stack.resource.url, timeout=120, limits=limits) as http:

        async def one() -> None:
            started = time.perf_counter()
            if download_id is None:
                response = await http.post(
                    "/resources", content=data, headers={"Content-Type": "audio/mpeg"}
                )
                response.raise_for_status()
                ids.append(response.json()["id"])
            else:
                async with http.stream("GET", f"/resources/{download_id}") as response:
                    response.raise_for_status()
                    async for _ in response.aiter_raw(READ_CHUNK):
                        pass
            latencies.append(time.perf_counter() - started)

        async def client() -> None:
            for _ in range(REQUESTS_PER_CLIENT):
                await one()

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, latencies, ids


def by_clients(stack: Stack) -> dict[str, dict[int, tuple[float, list[float]]]]:
    """way -> clients -> (MB/s of the burst, seconds of each request)."""
    data = mp3_bytes(CONCURRENCY_FILE)
    results: dict[str, dict[int, tuple[float, list[float]]]] = {}
    ids = [upload(stack, data)]
    try:
        for clients in CLIENTS:
            for way, target in (("upload", None), ("download", ids[0])):
                seconds, latencies, uploaded = asyncio.run(
                    _concurrent(stack, clients, data, target)
                )
                ids += uploaded
                rate = len(latencies) * len(data) / MB / seconds
                results.setdefault(way, {})[clients] = (rate, latencies)
    finally:
        delete(stack, ids)
    return results


def figures(stack: Stack, s3: S3Client) -> list[Figure]:
    sizes = by_size(stack, s3)
    clients = by_clients(stack)
    _plot(sizes, clients)
    results = []
    for way, per_size in sizes.items():
        for size, times in per_size.items():
            results.append(
                Figure(
                    f"{way}, {_size(size)}",
                    "MB/s",
                    size / MB / median(times),
                    group="cost by file size",
                    note=f"p50 {percentile(times, 0.5) * 1000:.0f} ms, "
                    f"p99 {percentile(times, 0.99) * 1000:.0f} ms of {len(times)}",
                )
            )
    for way, per_clients in clients.items():
        for count, (rate, latencies) in per_clients.items():
            results.append(
                Figure(
                    f"{way}, {count} clients",
                    "MB/s",
                    rate,
                    group="cost by concurrent clients, 1 MB files",
                    note=f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
                    f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms of {len(latencies)}",
                )
            )
    return results


def _size(size: int) -> str:
    return f"{size / MB:g} MB"


def _plot(
    sizes: dict[str, dict[int, list[float]]],
    clients: dict[str, dict[int, tuple[float, list[float]]]],
) -> None:
    two_panels(
        "bench-size",
        "Transfers by file size (one client; direct = boto3 to the same S3 server)",
        "file size (MB)",
        (
            "throughput (MB/s)",
            {w: [(s / MB, s / MB / median(t)) for s, t in p.items()] for w, p in sizes.items()},
        ),
        (
            "p99 latency (ms)",
            {
                w: [(s / MB, percentile(t, 0.99) * 1000) for s, t in p.items()]
                for w, p in sizes.items()
            },
        ),
    )
    latency = {}
    for way, per in clients.items():
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            latency[f"{way} {label}"] = [
                (c, percentile(lat, fraction) * 1000) for c, (_, lat) in per.items()
            ]
    two_panels(
        "bench-concurrency",
        "1 MB transfers through the Resource Service by concurrent clients",
        "concurrent clients",
        ("throughput (MB/s)", {w: [(c, r) for c, (r, _) in p.items()] for w, p in clients.items()}),
        ("latency (ms)", latency),
    )
