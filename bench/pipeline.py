"""The whole pipeline under load: uploads from 16 concurrent clients, each timed from the start
of its upload until its row is PERMANENT (processed, tags saved, moved).

Files of 1 MB and of 10 MB, with 4 processors, then 3, 2 and 1 (one stopped each time); then
10 MB files with 2 processors that fetch every whole file (TAGS_BLOCK_BYTES past the file
size): how the pipeline did before the processor read only the tags' ranges. That baseline
holds each file in memory, where the old processor streamed it to disk, so it flatters the
old way. The processors' logs say how many bytes each file cost (`bytes_fetched`); one 100 MB
file adds the largest size. Plotted to images/bench-pipeline.png.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field

import httpx2
from sqlalchemy import create_engine, select

from bench.env import BenchEnv
from bench.payloads import MB, delete, mp3_bytes, upload
from bench.plots import two_panels
from bench.proc import cpu_seconds, machine_busy_seconds, s3_server_pid
from bench.report import Figure, percentile
from devstack.testing.stack import Stack, wait_until
from resource_service.models import PERMANENT, Resource

FILES = {1 * MB: 100, 10 * MB: 40}  # file size -> uploads per run
PROCESSORS = (4, 3, 2, 1)
CLIENTS = 16
POLL_SECONDS = 0.02
DEADLINE_SECONDS = 180.0
GROUP = f"pipeline, {CLIENTS} clients"
TARGET_SPEEDUP = 3.0  # 10 MB files, 2 processors, against the whole-file baseline
MAX_FETCHED_BYTES = 256 * 1024
WHOLE_FILE_ENV = {"TAGS_BLOCK_BYTES": str(16 * 1024 * 1024)}  # one range: the whole 10 MB file


@dataclass
class Run:
    processors: int
    files: int
    file_bytes: int
    started: dict[int, float] = field(default_factory=dict)  # resource id -> upload start
    permanent: dict[int, float] = field(default_factory=dict)  # resource id -> first seen
    first_start: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds in the run
    machine_busy: float = 0.0  # share of all CPUs busy during the run (any process)

    @property
    def seconds(self) -> float:
        return max(self.permanent.values()) - self.first_start

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds

    @property
    def latencies(self) -> list[float]:
        return [self.permanent[i] - self.started[i] for i in self.started]


async def _upload_all(stack: Stack, data: bytes, run: Run) -> None:
    todo: asyncio.Queue[int] = asyncio.Queue()
    for number in range(run.files):
        todo.put_nowait(number)
    limits = httpx2.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx2.AsyncClient(base_url=stack.resource.url, timeout=60, limits=limits) as http:

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


def run_pipeline(stack: Stack, size: int, files: int) -> Run:
    """`files` uploads of an MP3 of (just under) `size` bytes, each until it is PERMANENT."""
    data = mp3_bytes(size)
    running = sum(1 for p in stack.processors if p.running.poll() is None)
    run = Run(processors=running, files=files, file_bytes=size)
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


def figures(env: BenchEnv) -> list[Figure]:
    with env.stack("pipeline", processors=max(PROCESSORS)) as stack:
        runs = _runs_by_processors(stack)
        fetched = list(_bytes_fetched(stack).values())
        fetched_100mb = _one_file_fetched(stack, 100 * MB)
    with env.stack("pipeline-whole-file", processors=2, processor_env=WHOLE_FILE_ENV) as stack:
        _warm_up(stack, mp3_bytes(10 * MB))
        baseline = run_pipeline(stack, 10 * MB, FILES[10 * MB])
    _plot(runs, baseline)
    ranged = next(r for r in runs if r.processors == 2 and r.file_bytes == 10 * MB)
    return [
        *_speedup_figures(ranged, baseline),
        *_fetched_figures(fetched, fetched_100mb),
        *_run_figures(runs),
        *_cpu_figures(ranged),
        *_cpu_figures(baseline, "whole files, "),
    ]


def _runs_by_processors(stack: Stack) -> list[Run]:
    runs = []
    _warm_up(stack, mp3_bytes(1 * MB))
    for count in PROCESSORS:
        for extra in stack.processors[count:]:
            extra.stop()
        for size, files in FILES.items():
            runs.append(run_pipeline(stack, size, files))
    return runs


def _one_file_fetched(stack: Stack, size: int) -> int:
    """The bytes one file of `size` cost, once its processor has said so."""
    resource_id = upload(stack, mp3_bytes(size))
    try:
        stack.wait_permanent(resource_id, timeout=120)
        wait_until(lambda: resource_id in _bytes_fetched(stack), 10, "no resource_processed line")
    finally:
        delete(stack, [resource_id])
    return _bytes_fetched(stack)[resource_id]


def _bytes_fetched(stack: Stack) -> dict[int, int]:
    """resource id -> the bytes its tags cost, from the processors' `resource_processed` lines."""
    records = stack.log_records("processor*.log", "resource_processed")
    return {record["resource_id"]: record["bytes_fetched"] for record in records}


def _processor_ms_per_file(run: Run) -> float:
    cpu = sum(seconds for name, seconds in run.cpu.items() if name.startswith("resource_proc"))
    return cpu / run.files * 1000


def _speedup_figures(ranged: Run, baseline: Run) -> list[Figure]:
    """The 10 MB run with 2 processors, by range, against the same with whole files."""
    return [
        Figure(
            "processors' CPU per 10 MB file, by range vs whole files",
            "ms",
            _processor_ms_per_file(ranged),
            _processor_ms_per_file(baseline),
            group=GROUP,
            note="both processors together; what the ranged read saves where it runs",
        ),
        Figure(
            "10 MB files/s, tags read by range vs whole files",
            "files/s",
            ranged.files_per_second,
            baseline.files_per_second,
            target=f">= {TARGET_SPEEDUP:g} x baseline",
            met=ranged.files_per_second >= TARGET_SPEEDUP * baseline.files_per_second,
            group=GROUP,
            note="2 processors each; baseline: every whole file fetched, in memory",
        ),
    ]


def _fetched_figures(fetched: list[int], fetched_100mb: int) -> list[Figure]:
    largest = max([*fetched, fetched_100mb])
    return [
        Figure(
            "bytes fetched per file, the most of any file",
            "KiB",
            largest / 1024,
            target=f"<= {MAX_FETCHED_BYTES // 1024} KiB",
            met=largest <= MAX_FETCHED_BYTES,
            group=GROUP,
            note=f"{len(fetched)} files of 1 and 10 MB, and one of 100 MB: "
            f"{fetched_100mb / 1024:.0f} KiB",
        )
    ]


def _run_figures(runs: list[Run]) -> list[Figure]:
    one = {r.file_bytes: r for r in runs if r.processors == 1}
    results = []
    for run in runs:
        latency = ", ".join(
            f"{label} {percentile(run.latencies, fraction) * 1000:.0f} ms"
            for label, fraction in (("p50", 0.5), ("p99", 0.99))
        )
        base = one[run.file_bytes]
        results.append(
            Figure(
                f"{run.file_bytes // MB} MB files, {_processors(run)}",
                "files/s",
                run.files_per_second,
                base.files_per_second if run is not base else None,
                group=GROUP,
                note=f"upload -> PERMANENT {latency}; baseline: 1 processor",
            )
        )
    return results


def _plot(runs: list[Run], baseline: Run) -> None:
    rate: dict[str, list[tuple[float, float]]] = {}
    latency: dict[str, list[tuple[float, float]]] = {}
    for run in runs:
        label = f"{run.file_bytes // MB} MB"
        rate.setdefault(label, []).append((run.processors, run.files_per_second))
        latency.setdefault(f"{label} p99", []).append(
            (run.processors, percentile(run.latencies, 0.99) * 1000)
        )
    rate["10 MB, whole files (before)"] = [(2, baseline.files_per_second)]
    two_panels(
        "bench-pipeline",
        f"Upload to PERMANENT, {CLIENTS} clients, by processors",
        "processors",
        ("files/s", rate),
        ("upload -> PERMANENT p99 (ms)", latency),
        log_x=False,
    )


def _cpu_figures(run: Run, what: str = "") -> list[Figure]:
    """What bounds the throughput: CPU per file of our processes, and how busy the CPUs were."""
    per_file = {name: seconds / run.files * 1000 for name, seconds in run.cpu.items()}
    ranked = sorted(per_file.items(), key=lambda item: -item[1])
    cores = os.cpu_count() or 1
    total = sum(per_file.values())
    return [
        Figure(
            f"CPU per {run.file_bytes // MB} MB file, our processes, {what}{_processors(run)}",
            "ms",
            total,
            group=GROUP,
            note=", ".join(f"{name} {ms:.0f}" for name, ms in ranked)
            + f"; {cores} CPUs allow <= {cores * 1000 / total:.0f} files/s",
        ),
        Figure(
            f"CPUs busy during the run, {what}{_processors(run)}",
            "%",
            run.machine_busy * 100,
            group=GROUP,
            note="every process on the machine, PostgreSQL and RabbitMQ included",
        ),
    ]


def _processors(run: Run) -> str:
    return f"{run.processors} processor" + ("s" if run.processors != 1 else "")
