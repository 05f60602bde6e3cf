"""The download path's per-chunk thread hop, against its alternatives, in this process.

`ObjectStore.open` hands each read of the S3 body to its thread pool and back to the event loop:
one hop per READ_CHUNK_BYTES. Measured here on a 10 MB object of the same S3 server: that path
with reads of 256 KiB, 1 MiB (the service's) and 4 MiB, and the whole body read in one worker
thread with no hop at all, the bound any way of reading it from the loop can reach.
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.payloads import MB, mp3_bytes
from bench.report import Figure, median
from resource_service import object_store
from resource_service.object_store import ObjectStore
from service_kit.s3 import S3Client

BUCKET = "resources-staging"
READS = {"256 KiB": 256 * 1024, "1 MiB (the service's)": 1024 * 1024, "4 MiB": 4 * 1024 * 1024}
REPEATS = 15


async def _through_store(store: ObjectStore, key: str, read_bytes: int) -> int:
    object_store.READ_CHUNK_BYTES = read_bytes  # read by `_iterate` on each call
    stored = await store.open(BUCKET, key)
    return sum([len(chunk) async for chunk in stored.chunks])


async def _in_one_thread(store: ObjectStore, key: str) -> int:
    def read_all() -> int:
        body = store.s3.get_object(Bucket=BUCKET, Key=key)["Body"]
        return sum(len(chunk) for chunk in body.iter_chunks(1024 * 1024))

    return await asyncio.get_running_loop().run_in_executor(store.threads, read_all)


async def _measure(store: ObjectStore, key: str, size: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    ways = {f"hop per {name} read": (read, True) for name, read in READS.items()}
    ways["one thread, no hop"] = (0, False)
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(REPEATS + 1):  # the first round warms up connections
        for name, (read, hops) in ways.items():
            started = loop.time()
            got = await (_through_store(store, key, read) if hops else _in_one_thread(store, key))
            assert got == size, f"{name}: {got} of {size} bytes"
            seconds[name].append(loop.time() - started)
    return {name: size / MB / median(times[1:]) for name, times in seconds.items()}


def figures(s3: S3Client) -> list[Figure]:
    data = mp3_bytes(10 * MB)
    key = f"bench/{uuid.uuid4()}.mp3"
    s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    saved = object_store.READ_CHUNK_BYTES
    try:
        with ThreadPoolExecutor(4) as threads:
            store = ObjectStore(s3, 16 * 1024 * 1024, 8 * 1024 * 1024, threads)
            rates = asyncio.run(_measure(store, key, len(data)))
    finally:
        object_store.READ_CHUNK_BYTES = saved
        s3.delete_object(Bucket=BUCKET, Key=key)
    bound = rates["one thread, no hop"]
    return [
        Figure(
            name,
            "MB/s",
            rate,
            None if name.startswith("one thread") else bound,
            group="download path, 10 MB, in process",
            note="" if name.startswith("one thread") else "baseline: one thread, no hop",
        )
        for name, rate in rates.items()
    ]
