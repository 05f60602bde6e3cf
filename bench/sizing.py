"""What each service uses under a steady upload load, against what Kubernetes gives it
(deploy/k8s/base: requests and limits) and what its database pool may open: the figures
docs/kubernetes.md sizes from.

Load: CLIENTS clients, each uploading 1 MB MP3s back to back for SECONDS, through a stack with
two processors, so every upload is processed and moved while the load runs. Sampled every
0.1 s: each process's RSS (/proc/PID/status) and the connections to each service's database
(pg_stat_activity). CPU: each process's user + system time over the run, divided by the wall
time, in cores. On two cores the services compete with LocalStack, PostgreSQL, RabbitMQ and the
clients: what bounds the figures is this machine, not the services' limits.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg
import yaml

from bench.payloads import MB, mp3_bytes, upload
from bench.proc import cpu_seconds, status_kb
from bench.report import Figure
from devstack import REPO
from devstack.testing.processes import ServiceProcess
from devstack.testing.stack import Stack
from service_kit.config import DatabaseSettings

CLIENTS = 8
SECONDS = 20.0
SAMPLE_SECONDS = 0.1
MANIFESTS = REPO / "deploy" / "k8s" / "base"
NAMES = {  # our package -> its Deployment
    "storage_service": "storage-service",
    "song_service": "song-service",
    "resource_service": "resource-service",
    "resource_processor": "resource-processor",
}
HPA_MAX_RESOURCE_REPLICAS = 10  # overlays/production/autoscaling.yaml
OTHER_REPLICAS = 2  # Storage and Song in production
MAX_CONNECTIONS = 100  # PostgreSQL's default


@dataclass
class Peaks:
    rss_kb: dict[int, int] = field(default_factory=dict)  # pid -> peak RSS
    connections: dict[str, int] = field(default_factory=dict)  # database -> peak


def limits(deployment: str) -> tuple[float, float]:
    """(CPU cores, memory MiB) of the deployment's container limits."""
    for document in yaml.safe_load_all((MANIFESTS / f"{deployment}.yaml").read_text()):
        if document and document.get("kind") == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            cpu, memory = container["resources"]["limits"].values()
            cores = float(cpu[:-1]) / 1000 if str(cpu).endswith("m") else float(cpu)
            return cores, float(str(memory).removesuffix("Mi"))
    raise LookupError(deployment)


def database_of(service: ServiceProcess) -> str | None:
    url = service.env.get("DATABASE_URL")
    return urlsplit(url).path.lstrip("/") if url else None


def sample(stack: Stack, peaks: Peaks, stop: threading.Event) -> None:
    admin = urlsplit(stack.resource_database_url)._replace(scheme="postgresql", path="/postgres")
    with psycopg.connect(admin.geturl(), autocommit=True) as conn:
        while not stop.wait(SAMPLE_SECONDS):
            for service in stack.services:
                pid = service.running.pid
                peaks.rss_kb[pid] = max(peaks.rss_kb.get(pid, 0), status_kb(pid, "VmRSS"))
            rows = conn.execute("SELECT datname, count(*) FROM pg_stat_activity GROUP BY 1")
            for database, count in rows:
                peaks.connections[database] = max(peaks.connections.get(database, 0), count)


def load(stack: Stack, data: bytes, deadline: float, done: list[int]) -> None:
    while time.monotonic() < deadline:
        done.append(upload(stack, data))


def figures(stack: Stack) -> list[Figure]:
    data = mp3_bytes(1 * MB)
    upload(stack, data)  # warm-up
    peaks, stop, done = Peaks(), threading.Event(), list[int]()
    sampler = threading.Thread(target=sample, args=(stack, peaks, stop), daemon=True)
    cpu_before = {s.running.pid: cpu_seconds(s.running.pid) for s in stack.services}
    started = time.monotonic()
    sampler.start()
    clients = [
        threading.Thread(target=load, args=(stack, data, started + SECONDS, done))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    cores = {pid: (cpu_seconds(pid) - before) / wall for pid, before in cpu_before.items()}
    found = per_service(stack, peaks, cores)
    note = f"{CLIENTS} clients, {len(done)} uploads of 1 MB in {wall:.0f} s"
    return [*found, *connections_at_the_hpa_maximum(stack, peaks, note)]


def per_service(stack: Stack, peaks: Peaks, cores: dict[int, float]) -> list[Figure]:
    result = []
    seen: set[str] = set()
    for service in stack.services:
        if service.package in seen:  # the second processor: the first one speaks for both
            continue
        seen.add(service.package)
        result += service_figures(service, peaks, cores[service.running.pid])
    return result


def service_figures(service: ServiceProcess, peaks: Peaks, cores: float) -> list[Figure]:
    cpu_limit, memory_limit = limits(NAMES[service.package])
    rss_mb = peaks.rss_kb[service.running.pid] / 1024
    group = f"sizing, {NAMES[service.package]}"
    half = memory_limit / 2
    found = [
        Figure("peak RSS", "MiB", rss_mb, memory_limit, f"<= {half:g} MiB", rss_mb <= half,
               group, "baseline: its memory limit"),
        Figure("CPU under the load", "cores", cores, cpu_limit, f"<= {cpu_limit:g}",
               cores <= cpu_limit, group, "baseline: its CPU limit"),
    ]  # fmt: skip
    database = database_of(service)
    if database is not None:
        threads = DatabaseSettings.model_fields["database_threads"].default
        opened = peaks.connections.get(database, 0)
        found.append(
            Figure("peak connections to its database", "", opened, threads,
                   f"<= {threads} (DATABASE_THREADS)", opened <= threads, group,
                   "baseline: the most its pool may open")
        )  # fmt: skip
    return found


def connections_at_the_hpa_maximum(stack: Stack, peaks: Peaks, note: str) -> list[Figure]:
    """The measured peak per replica, times the replicas production may run at most."""
    measured = {s.package: peaks.connections.get(database_of(s) or "", 0) for s in stack.services}
    total = (
        measured["resource_service"] * HPA_MAX_RESOURCE_REPLICAS
        + (measured["storage_service"] + measured["song_service"]) * OTHER_REPLICAS
    )
    threads = DatabaseSettings.model_fields["database_threads"].default
    configured = threads * (HPA_MAX_RESOURCE_REPLICAS + 2 * OTHER_REPLICAS)
    return [
        Figure(
            "connections at the HPA's maximum (measured peaks x replicas)",
            "",
            total,
            configured,
            f"<= {MAX_CONNECTIONS} (max_connections)",
            total <= MAX_CONNECTIONS,
            "sizing, PostgreSQL",
            f"{note}; baseline: DATABASE_THREADS x replicas, what the pools may open",
        )
    ]
