"""Where a 10 MB upload's and download's time goes: wall and CPU time in the Resource Service
and in the S3 server, against the same transfer straight to S3 with boto3, and a py-spy profile
of the Resource Service (attached to its pid) while it serves them.

Each profile (py-spy's raw collapsed stacks, loadable in speedscope) is saved in the run's
directory; its top frames are printed.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.payloads import MB, delete, download, mp3_bytes, upload
from bench.proc import cpu_seconds, s3_server_pid
from bench.report import Figure
from devstack.testing.stack import Stack
from service_kit.s3 import S3Client

FILE_BYTES = 10 * MB
TRANSFERS = 15  # of each kind, for the CPU figures and again under the profiler
SAMPLE_RATE = 250  # per second
RAW_BUCKET = "resources-staging"
# What a sample is spent on: the first of these that its stack matches.
COSTS = [
    ("S3 call: SigV4 payload SHA-256 (botocore)", r"SigV4Auth\.payload"),
    ("S3 call: checksums (botocore CRC32/MD5)", r"httpchecksum|Checksum|md5"),
    (
        "S3 call: blocked in socket send/recv (the S3 server's pace)",
        r"(botocore|urllib3).*;(HTTPConnection\.send|SocketIO\.readinto|[^;]*sendall)[^;]*$",
    ),
    ("S3 call: rest of botocore/urllib3", r"botocore|urllib3"),
    ("database (psycopg, SQLAlchemy)", r"psycopg|sqlalchemy"),
    ("Storage lookup (httpx2, breaker)", r"httpx2|httpcore2|storage_lookup|resilience"),
    (
        "thread hand-offs (to_thread, wake-ups)",
        r"(ThreadPoolExecutor\.submit|_write_to_self|call_soon_threadsafe|add_done_callback"
        r"|_chain_future|Future\.set_result)[^;]*$",
    ),
    # The rest by the frame the sample is in: every loop stack has uvicorn and starlette below.
    ("HTTP server: body in/out (uvicorn, h11, starlette)", r"(h11|uvicorn|starlette|anyio)/[^;]*$"),
    ("asyncio loop and transports", r"(asyncio/|selectors)[^;]*$"),
    ("our code (resource_service, service_kit)", r"(resource_service|service_kit)/[^;]*$"),
]
# Leaf frames of a thread that waits for work (py-spy cannot tell idle threads here).
IDLE = re.compile(
    r"^(_worker \(concurrent/futures/thread|Condition\.wait|EpollSelector\.select|Queue\.get"
    r"|WorkerThread\.run|Event\.wait|Thread\.join)"
)


Action = Callable[[], object]


@dataclass
class CpuCost:
    wall: float
    service: float
    s3_server: float


def cpu_cost(action: Action, count: int, service_pid: int, s3_pid: int | None) -> CpuCost:
    service_before = cpu_seconds(service_pid)
    s3_before = cpu_seconds(s3_pid) if s3_pid else 0.0
    started = time.perf_counter()
    for _ in range(count):
        action()
    wall = time.perf_counter() - started
    return CpuCost(
        wall / count,
        (cpu_seconds(service_pid) - service_before) / count,
        ((cpu_seconds(s3_pid) - s3_before) / count) if s3_pid else float("nan"),
    )


def record_profile(pid: int, output: Path, action: Action) -> str | None:
    """Run `action` under `py-spy record`; None when it worked, else why not."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        return "py-spy is not installed (pip install py-spy)"
    spy = subprocess.Popen(
        [py_spy, "record", "-p", str(pid), "-r", str(SAMPLE_RATE), "-f", "raw", "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)  # attached and sampling
    try:
        if spy.poll() is None:
            action()
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            _, error = spy.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, error = spy.communicate()
    if not output.exists() or output.stat().st_size == 0:
        return f"py-spy could not sample pid {pid}: {error.decode(errors='replace').strip()}"
    return None


def top_costs(
    collapsed: Path, limit: int = 12
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top frames by own samples, samples per COSTS category), idle threads left out."""
    own: collections.Counter[str] = collections.Counter()
    costs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        frames = [_without_line(frame) for frame in stack.split(";")]
        if IDLE.match(frames[-1]):
            continue
        total += samples
        own[frames[-1]] += samples
        joined = ";".join(frames)
        category = next((name for name, pattern in COSTS if re.search(pattern, joined)), "other")
        costs[category] += samples
    return total, own.most_common(limit), costs.most_common()


def _without_line(frame: str) -> str:
    return re.sub(r":\d+\)$", ")", frame)


def print_profile(collapsed: Path, what: str, seconds: float) -> None:
    total, own, costs = top_costs(collapsed)
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    for title, rows in (("what it is spent on", costs), ("top frames by own samples", own)):
        table = Table(
            title=f"Resource Service profile during {what}: {title} "
            f"({total} samples of threads not idle, at {SAMPLE_RATE}/s over {seconds:.1f} s)",
            title_justify="left",
        )
        table.add_column("share", justify="right")
        table.add_column("cost")
        for frame, samples in rows:
            table.add_row(f"{samples / max(total, 1):.1%}", frame)
        console.print(table)
    console.print(f"profile: {collapsed} (py-spy raw format; open it in speedscope)")


def figures(stack: Stack, s3: S3Client, run_dir: Path) -> list[Figure]:
    data = mp3_bytes(FILE_BYTES)
    ids: list[int] = []
    raw_key = f"bench/{uuid.uuid4()}.mp3"

    def transfers() -> dict[str, tuple[Action, Action]]:
        """kind -> (through the service, straight to S3)"""
        return {
            "upload": (
                lambda: ids.append(upload(stack, data)),
                lambda: s3.put_object(Bucket=RAW_BUCKET, Key=raw_key, Body=data),
            ),
            "download": (
                lambda: download(stack, ids[0]),
                lambda: s3.get_object(Bucket=RAW_BUCKET, Key=raw_key)["Body"].read(),
            ),
        }

    results: list[Figure] = []
    try:
        for kind, (service, raw) in transfers().items():
            results += _profile(stack, kind, service, raw, run_dir)
    finally:
        s3.delete_object(Bucket=RAW_BUCKET, Key=raw_key)
        delete(stack, ids)
    return results


def _profile(stack: Stack, kind: str, service: Action, raw: Action, run_dir: Path) -> list[Figure]:
    pid = stack.resource.running.pid
    s3_pid = s3_server_pid()
    service(), raw()  # warm-up
    raw_cost = cpu_cost(raw, TRANSFERS, pid, s3_pid)
    service_cost = cpu_cost(service, TRANSFERS, pid, s3_pid)
    collapsed = run_dir / f"profile-{kind}.txt"
    started = time.perf_counter()
    problem = record_profile(pid, collapsed, lambda: [service() for _ in range(TRANSFERS)])
    seconds = time.perf_counter() - started
    if problem is None:
        print_profile(collapsed, f"{TRANSFERS} {kind}s of 10 MB", seconds)
    else:
        print(f"profile skipped: {problem}")
    group = f"where a 10 MB {kind}'s time goes"
    return [
        Figure(
            "wall time (service vs straight to S3)",
            "ms",
            service_cost.wall * 1000,
            raw_cost.wall * 1000,
            group=group,
        ),
        Figure(
            "Resource Service CPU",
            "ms",
            service_cost.service * 1000,
            group=group,
            note="its process, every thread",
        ),
        Figure(
            f"Resource Service CPU per MB {kind}ed",
            "ms/MB",
            service_cost.service * 1000 / (FILE_BYTES / MB),
            group=group,
            note=f"of {TRANSFERS} transfers of 10 MB; clock ticks of 10 ms bound its precision",
        ),
        Figure(
            "S3 server CPU (service vs straight to S3)",
            "ms",
            service_cost.s3_server * 1000,
            raw_cost.s3_server * 1000,
            group=group,
            note="LocalStack, shared: others' use of it lands here too",
        ),
    ]
