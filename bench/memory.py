"""Peak RSS growth of the Resource Service while it takes in, then serves, a 200 MB file.

RSS is read from /proc (no psutil): the kernel's own peak (VmHWM, reset through clear_refs
before each transfer) when this machine lets us reset it, and our samples every 2 ms either way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from bench.payloads import MB, delete, download, mp3_bytes, upload
from bench.proc import reset_peak_rss, status_kb
from bench.report import Figure
from devstack.testing.stack import Stack

FILE_BYTES = 200 * MB
TARGET_MB = 40.0


@contextlib.contextmanager
def peak_growth_mb(pid: int, interval: float = 0.002) -> Iterator[dict[str, float]]:
    """Yields a dict that holds, once the block ends, `growth` (MB over the RSS at the start)
    and `start` (that RSS, MB)."""
    result: dict[str, float] = {}
    start_kb = status_kb(pid, "VmRSS")
    kernel_peak = reset_peak_rss(pid)
    sampled = [start_kb]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            sampled[0] = max(sampled[0], status_kb(pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        peak_kb = max(sampled[0], status_kb(pid, "VmHWM") if kernel_peak else 0)
        result.update(growth=(peak_kb - start_kb) * 1024 / MB, start=start_kb * 1024 / MB)


def figures(stack: Stack) -> list[Figure]:
    pid = stack.resource.running.pid
    data = mp3_bytes(FILE_BYTES)
    ids: list[int] = []
    try:
        # Warm-up with a small file: first-call allocations are not what this measures.
        ids.append(upload(stack, mp3_bytes(1 * MB)))
        download(stack, ids[-1])
        with peak_growth_mb(pid) as up:
            ids.append(upload(stack, data))
        with peak_growth_mb(pid) as down:
            received = download(stack, ids[-1])
        assert received == len(data), f"downloaded {received} of {len(data)} bytes"
    finally:
        delete(stack, ids)
    return [
        _figure("peak RSS growth, uploading 200 MB", up),
        _figure("peak RSS growth, downloading 200 MB", down),
    ]


def _figure(name: str, measured: dict[str, float]) -> Figure:
    return Figure(
        name,
        "MB",
        measured["growth"],
        baseline=FILE_BYTES / MB,
        target=f"<= {TARGET_MB:g} MB",
        met=measured["growth"] <= TARGET_MB,
        group="memory, Resource Service",
        note=f"baseline: the file size; RSS before: {measured['start']:.0f} MB",
    )
