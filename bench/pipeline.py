"""The whole pipeline under load: 200 uploads of 1 MB from 16 concurrent clients, each timed
from the start of its upload until its row is PERMANENT (processed, tags saved, moved).

Run with 2 processors, then with 1 (one stopped): how far a second worker helps on this machine.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import create_engine, select

from bench.payloads import MB, delete, mp3_bytes, upload
from bench.proc import cpu_seconds, machine_busy_seconds, s3_server_pid
from bench.report import Figure, percentile
from devstack.stack import Stack
from resource_service.models import PERMANENT, Resource

FILES = 200
FILE_BYTES = 1 * MB
CLIENTS = 16
POLL_SECONDS = 0.02
DEADLINE_SECONDS = 180.0
GROUP = f"pipeline, {FILES} x 1 MB, {CLIENTS} clients"


@dataclass
class Run:
    processors: int
    started: dict[int, float] = field(default_factory=dict)  # resource id -> upload start
    permanent: dict[int, float] = field(default_factory=dict)  # resource id -> first seen
    first_start: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the run
    machine_busy: float = 0.0  # share of all CPUs busy during the run (any process)

    @property
    def seconds(self) -> float:
        return max(self.permanent.values()) - self.first_start

    @property
    def latencies(self) -> list[float]:
        return [self.permanent[i] - self.started[i] for i in self.started]


async def _upload_all(stack: Stack, data: bytes, run: Run) -> None:
    todo: asyncio.Queue[int] = asyncio.Queue()
    for number in range(FILES):
        todo.put_nowait(number)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=stack.resource.url, timeout=60, limits=limits) as http:

        async def client() -> None:
            while not todo.empty():
                todo.get_nowait()
                started = time.perf_counter()
                response = await http.post(
                    "/resources", content=data, headers={"Content-Type": "audio/mpeg"}
                )
                response.raise_for_status()
                run.started[response.json()["id"]] = started

        run.first_start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))


def _watch_permanent(stack: Stack, run: Run, uploads_done: threading.Event) -> None:
    """Poll the Resource Service's database for rows turned PERMANENT, noting when each was
    first seen, until every uploaded row is."""
    engine = create_engine(stack.resource_database_url)
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        with engine.connect() as conn:
            while not (uploads_done.is_set() and len(run.permanent) == len(run.started)):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{len(run.started) - len(run.permanent)} of {len(run.started)} uploads "
                        f"not PERMANENT after {DEADLINE_SECONDS:.0f} s; logs in {stack.log_dir}"
                    )
                waiting = [i for i in list(run.started) if i not in run.permanent]
                if waiting:
                    query = select(Resource.id).where(
                        Resource.state == PERMANENT, Resource.id.in_(waiting)
                    )
                    seen = time.perf_counter()
                    for (resource_id,) in conn.execute(query):
                        run.permanent[resource_id] = seen
                    conn.rollback()  # a fresh snapshot for the next poll
                time.sleep(POLL_SECONDS)
    finally:
        engine.dispose()


def _platform_pids(stack: Stack) -> dict[str, int]:
    """Our processes: the services, the S3 server and this client (not PostgreSQL/RabbitMQ)."""
    running = [s for s in stack.services if s.running.poll() is None]
    pids = {s.package: s.running.pid for s in running if s not in stack.processors}
    for number, processor in enumerate(p for p in running if p in stack.processors):
        pids[f"resource_processor {number}"] = processor.running.pid
    pids["bench clients"] = os.getpid()
    if (s3_pid := s3_server_pid()) is not None:
        pids["S3 server"] = s3_pid
    return pids


def run_pipeline(stack: Stack, data: bytes) -> Run:
    run = Run(processors=sum(1 for p in stack.processors if p.running.poll() is None))
    pids = _platform_pids(stack)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    busy_before, all_before = machine_busy_seconds()
    uploads_done = threading.Event()
    failure: list[BaseException] = []

    def watch() -> None:
        try:
            _watch_permanent(stack, run, uploads_done)
        except BaseException as error:
            failure.append(error)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        asyncio.run(_upload_all(stack, data, run))
    finally:
        uploads_done.set()
        watcher.join()
        run.cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        busy, every = machine_busy_seconds()
        run.machine_busy = (busy - busy_before) / (every - all_before)
        delete(stack, list(run.started))
    if failure:
        raise failure[0]
    return run


def _warm_up(stack: Stack, data: bytes) -> None:
    """One file through every step first: connections, first-call paths, queues declared."""
    ids = [upload(stack, data) for _ in stack.processors]
    try:
        for resource_id in ids:
            stack.wait_permanent(resource_id, timeout=60)
    finally:
        delete(stack, ids)


def figures(stack: Stack) -> list[Figure]:
    data = mp3_bytes(FILE_BYTES)
    _warm_up(stack, data)
    runs = [run_pipeline(stack, data)]
    for extra in stack.processors[1:]:
        extra.stop()
    runs.append(run_pipeline(stack, data))
    two, one = runs
    results = [
        Figure(
            f"throughput, {_processors(two)}",
            "files/s",
            FILES / two.seconds,
            baseline=FILES / one.seconds,
            group=GROUP,
            note=f"baseline: {_processors(one)}; ratio: how it scales",
        ),
        Figure(f"throughput, {_processors(one)}", "files/s", FILES / one.seconds, group=GROUP),
    ]
    for run in runs:
        for label, fraction in (("p50", 0.5), ("p99", 0.99)):
            latency_ms = percentile(run.latencies, fraction) * 1000
            name = f"upload -> PERMANENT latency {label}, {_processors(run)}"
            results.append(Figure(name, "ms", latency_ms, group=GROUP))
    for run in runs:
        results += _cpu_figures(run)
    return results


def _cpu_figures(run: Run) -> list[Figure]:
    """What bounds the throughput: CPU per file of our processes, and how busy the CPUs were."""
    per_file = {name: seconds / FILES * 1000 for name, seconds in run.cpu.items()}
    ranked = sorted(per_file.items(), key=lambda item: -item[1])
    cores = os.cpu_count() or 1
    total = sum(per_file.values())
    return [
        Figure(
            f"CPU per file, our processes, {_processors(run)}",
            "ms",
            total,
            group=GROUP,
            note=", ".join(f"{name} {ms:.0f}" for name, ms in ranked)
            + f"; {cores} CPUs allow <= {cores * 1000 / total:.0f} files/s",
        ),
        Figure(
            f"CPUs busy during the run, {_processors(run)}",
            "%",
            run.machine_busy * 100,
            group=GROUP,
            note="every process on the machine, PostgreSQL and RabbitMQ included",
        ),
    ]


def _processors(run: Run) -> str:
    return f"{run.processors} processor" + ("s" if run.processors != 1 else "")
