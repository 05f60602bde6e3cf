"""`make chaos`: a Jepsen-style checker. Clients upload and delete while a seeded schedule of real
faults hits the platform; once everything is healthy again, every invariant is checked.

    python -m devstack.testing.chaos [--seed N] [--duration SECONDS] [--report PATH]

Faults, two at a time (never on the same target), each for a seeded length: SIGKILL (then a
restart) or SIGSTOP (then SIGCONT) of the Storage Service, the Song Service, the Resource Service
or a processor; a cut of the TCP proxy the services reach RabbitMQ, PostgreSQL, S3, the Storage
Service or the Song Service through; PostgreSQL frozen (its proxy holds every byte, as a
SIGSTOPped server looks to its clients); a broker restart as the clients see one (every connection
of the run's own vhost closed by `rabbitmqctl close_all_connections`). Meanwhile `make
reconcile FIX=1` runs over and over with no grace period at all. Invariants: every upload
answered 200 ends with exactly one PERMANENT object of the same MD5, a song with its title and
no STAGING object; every delete answered 200 leaves no row, no object and no song; no object
nobody references; nothing parked. It writes a JSON report and exits 1 on any violation. Runs
on a sandbox of its own (devstack.testing.sandbox), removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import create_engine, text

from devstack import localstack
from devstack.ops.reconcile import Stores, find, fix, stack_stores
from devstack.runner import servers
from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.processes import ServiceProcess
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack, start_stack
from service_kit.config import S3Settings
from service_kit.messaging import RESOURCE_DELETED, RESOURCE_PROCESSED, RESOURCE_UPLOADED
from service_kit.s3 import S3Client, make_s3_client, object_exists

PROXIED = ("rabbitmq", "postgres", "s3", "storage", "song")
# The clients' uploads are small: an intent a kill leaves behind expires in 45 s, not half an hour.
QUICK_UPLOAD_INTENTS = {
    "UPLOAD_MAX_SECONDS": "20",
    "UPLOAD_IDLE_SECONDS": "5",
    "UPLOAD_COMMIT_SECONDS": "20",
}
CONVERGE_SECONDS = 180  # longer than the longest retry delay and a restart, many times over
CLIENT_PAUSE_SECONDS = 0.2
RECONCILE_STUCK_AFTER = timedelta(seconds=30)  # republish through the admin route past this


@dataclass
class Report:
    seed: int
    duration_seconds: float
    uploads: int = 0
    accepted: int = 0
    deletes: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    stuck: list[int] = field(default_factory=list)
    parked: dict[str, int] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)  # answers or contents that break the contract
    seconds_to_converge: float | None = None
    reconcile_rounds: dict[str, int] = field(default_factory=dict)  # whole, or cut short by what

    @property
    def violations(self) -> int:
        found = len(self.lost) + len(self.duplicated) + len(self.stuck)
        return found + len(self.orphaned) + len(self.wrong) + sum(self.parked.values())


@dataclass
class Ledger:
    """What the clients were told: every upload answered 200, every delete answered 200."""

    uploaded: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (md5, title)
    deleted: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # id -> objects
    # Deletes that got no answer: the resource must end either whole or wholly gone.
    uncertain: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    attempts: int = 0
    deletes: int = 0
    wrong: list[str] = field(default_factory=list)


def proxied_stack(
    sandbox: Sandbox, s3_url: str, log_dir: Path, exit_stack: contextlib.ExitStack
) -> tuple[Stack, dict[str, FaultProxy], str]:
    """A stack whose services reach every dependency through a proxy of ours."""
    proxies = {name: FaultProxy() for name in PROXIED}
    for proxy in proxies.values():
        proxy.start()
        exit_stack.callback(proxy.close)
    vhost, rabbitmq_url = sandbox.vhost("chaos")
    upstreams = {"rabbitmq": rabbitmq_url, "s3": s3_url, "postgres": sandbox.postgres_url}
    for name, url in upstreams.items():
        proxies[name].upstream_port = urlsplit(url).port
    new_database_url = sandbox.database_url
    via = {name: proxy.via for name, proxy in proxies.items()}
    resource_db = new_database_url("resource")  # the checker reads it directly
    stack = start_stack(
        lambda name: via["postgres"](new_database_url(name)),
        via["rabbitmq"](rabbitmq_url),
        via["s3"](s3_url),
        log_dir,
        processors=2,
        processor_env={"SONG_SERVICE_URL": proxies["song"].url},
        resource_database_url=resource_db,
        resource_env={
            "DATABASE_URL": via["postgres"](resource_db),
            "STORAGE_SERVICE_URL": proxies["storage"].url,
            "SONG_SERVICE_URL": proxies["song"].url,
            **QUICK_UPLOAD_INTENTS,
        },
    )
    exit_stack.callback(stack.stop)
    proxies["storage"].upstream_port = stack.storage.port
    proxies["song"].upstream_port = stack.song.port
    return stack, proxies, vhost


def clients(stack: Stack, ledger: Ledger, rng: random.Random, stop: threading.Event) -> None:
    """Upload (and now and then delete one of the accepted uploads) until told to stop."""
    http = httpx2.Client(timeout=30)
    while not stop.is_set():
        if ledger.uploaded and rng.random() < 0.2:
            delete_one(stack, http, ledger, rng.choice(sorted(ledger.uploaded)))
        else:
            upload_one(stack, http, ledger, rng)
        stop.wait(CLIENT_PAUSE_SECONDS)
    http.close()


def upload_one(stack: Stack, http: httpx2.Client, ledger: Ledger, rng: random.Random) -> None:
    ledger.attempts += 1
    title = f"chaos {ledger.attempts} {rng.getrandbits(32):08x}"
    data = make_mp3(1, title=title)
    try:
        answer = http.post(
            f"{stack.resource.url}/resources", content=data, headers={"Content-Type": "audio/mpeg"}
        )
    except httpx2.HTTPError:
        return  # no answer: nothing was promised
    if answer.status_code == 200:
        ledger.uploaded[answer.json()["id"]] = (hashlib.md5(data).hexdigest(), title)
    elif answer.status_code != 503:  # an outage may refuse an upload, and must say so
        ledger.wrong.append(f"upload answered {answer.status_code}: {answer.text[:200]}")


def delete_one(stack: Stack, http: httpx2.Client, ledger: Ledger, resource_id: int) -> None:
    row = stack.resource_row(resource_id)  # read directly: only the services' path is cut
    objects = [(row.bucket, row.key), (row.staging_bucket, row.staging_key)] if row else []
    ledger.deletes += 1
    try:
        answer: httpx2.Response | None = http.delete(
            f"{stack.resource.url}/resources", params={"id": str(resource_id)}
        )
    except httpx2.HTTPError:
        answer = None
    if answer is None or answer.status_code == 503:
        # No answer, or "unavailable": a database call past its deadline may still finish in
        # its thread, so the delete may land. Either outcome is right, if it is whole.
        ledger.uploaded.pop(resource_id, None)
        ledger.uncertain[resource_id] = objects
    elif answer.status_code == 200 and resource_id in answer.json()["ids"]:
        ledger.uploaded.pop(resource_id, None)
        ledger.deleted[resource_id] = objects
    elif answer.status_code != 200:
        ledger.wrong.append(f"delete answered {answer.status_code}: {answer.text[:200]}")


@dataclass
class Targets:
    """What the fault schedules may hit, and what is being hit now (never twice at once)."""

    stack: Stack
    proxies: dict[str, FaultProxy]
    restart_broker: Callable[[], object]
    busy: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def services(self) -> dict[str, ServiceProcess]:
        named = {"storage": self.stack.storage, "song": self.stack.song}
        named["resource"] = self.stack.resource
        return named | {f"processor{i}": p for i, p in enumerate(self.stack.processors)}

    def choices(self) -> list[tuple[str, str]]:
        return (
            [("kill", s) for s in self.services]
            + [("stop", s) for s in self.services]
            + [("cut", p) for p in self.proxies]
            + [("hold", "postgres")]  # frozen, as a SIGSTOPped server looks to its clients
            + [("restart", "broker")]
        )

    def claim(self, rng: random.Random) -> tuple[str, str] | None:
        with self.lock:
            free = [c for c in self.choices() if c[1] not in self.busy]
            if not free:
                return None
            kind, target = rng.choice(free)
            self.busy.add(target)
            return kind, target

    def release(self, target: str) -> None:
        with self.lock:
            self.busy.discard(target)


def faults(targets: Targets, rng: random.Random, until: float, counts: Counter[str]) -> None:
    """One schedule: a fault at a time, each a seeded 1 s to 90 s (never past `until`), then
    healed. Two schedules run side by side."""
    while time.monotonic() < until - 2:
        time.sleep(rng.uniform(1, 4))
        length = rng.uniform(1, max(1.0, min(90.0, (until - time.monotonic()) / 2)))
        claimed = targets.claim(rng)
        if claimed is None:
            continue
        kind, target = claimed
        counts[f"{kind} {target}"] += 1
        try:
            if kind == "restart":
                targets.restart_broker()  # the clients reconnect at once: no length to wait
            elif kind in PROXY_MODES:
                with proxy_fault(targets.proxies[target], PROXY_MODES[kind]):
                    time.sleep(length)
            else:
                with hurt(targets.services[target], kind):
                    time.sleep(length)
        finally:
            targets.release(target)


def reconciling(stores: Stores, stop: threading.Event, rounds: Counter[str]) -> None:
    """`make reconcile FIX=1` with no grace period, over and over, until told to stop: it must
    remove nothing live. A service it acts through may be down: that round is cut short."""
    while not stop.is_set():
        try:
            fix(stores, find(stores, timedelta(0), RECONCILE_STUCK_AFTER), timedelta(0))
            rounds["whole"] += 1
        except Exception as exc:
            rounds[f"cut short: {type(exc).__name__}"] += 1
        stop.wait(1)


PROXY_MODES = {"cut": Mode.CUT, "hold": Mode.HOLD}


@contextlib.contextmanager
def proxy_fault(proxy: FaultProxy, mode: Mode) -> Iterator[None]:
    proxy.set_mode(mode)
    try:
        yield
    finally:
        proxy.set_mode(Mode.PASS)


@contextlib.contextmanager
def hurt(service: ServiceProcess, kind: str) -> Iterator[None]:
    service.signal(signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
    try:
        yield
    finally:
        if kind == "kill":
            service.running.wait()
            service.start().wait_healthy(timeout=90)
        else:
            service.signal(signal.SIGCONT)


def converge(stack: Stack, ledger: Ledger, s3: S3Client, deadline: float) -> bool:
    """Wait until every promise is kept and every object is referenced, or the deadline
    passes; True when all were. An upload killed between its PUT and its row leaves an object
    that its intent removes once expired (45 s here): that is waited for, not reported."""
    while time.monotonic() < deadline:
        promised = [*ledger.uploaded, *ledger.deleted, *ledger.uncertain]
        if all(settled(stack, ledger, s3, i) for i in promised) and not unreferenced(stack, s3):
            return True
        time.sleep(1)
    return False


def settled(stack: Stack, ledger: Ledger, s3: S3Client, resource_id: int) -> bool:
    row = stack.resource_row(resource_id)
    song = stack.song_of(resource_id).status_code
    objects = ledger.deleted.get(resource_id, ledger.uncertain.get(resource_id, []))
    gone = row is None and song == 404 and not any(object_exists(s3, b, k) for b, k in objects)
    whole = row is not None and row.state == "PERMANENT" and song == 200
    if resource_id in ledger.deleted:
        return gone
    return whole or (resource_id in ledger.uncertain and gone)


def check(stack: Stack, ledger: Ledger, s3: S3Client, report: Report) -> None:
    for resource_id, (md5, title) in ledger.uploaded.items():
        row = stack.resource_row(resource_id)
        if row is None:
            report.lost.append(resource_id)
            continue
        if row.state != "PERMANENT":
            report.stuck.append(resource_id)
            continue
        name = row.staging_key.rsplit("/", 1)[-1]
        copies = [k for k in keys(s3, "resources-permanent", stack.permanent_prefix) if name in k]
        if len(copies) > 1:
            report.duplicated.append(resource_id)
        body = s3.get_object(Bucket=row.bucket, Key=row.key)["Body"].read()
        if hashlib.md5(body).hexdigest() != md5:
            report.wrong.append(f"resource {resource_id}: the stored bytes differ")
        song = stack.song_of(resource_id)
        if song.status_code != 200 or song.json()["name"] != title:
            report.wrong.append(
                f"resource {resource_id}: song {song.status_code} {song.text[:100]}"
            )
        if object_exists(s3, row.staging_bucket, row.staging_key):
            report.orphaned.append(f"{row.staging_bucket}/{row.staging_key}")
    for resource_id in [*ledger.deleted, *ledger.uncertain]:
        if not settled(stack, ledger, s3, resource_id):
            report.wrong.append(f"deleted resource {resource_id} is not wholly gone")
    report.orphaned = sorted({*report.orphaned, *unreferenced(stack, s3)})


def unreferenced(stack: Stack, s3: S3Client) -> list[str]:
    """Objects of the run's folders that no row names."""
    referenced = set(row_keys(stack))
    return [
        f"{bucket}/{k}"
        for bucket, prefix in (
            ("resources-staging", stack.staging_prefix),
            ("resources-permanent", stack.permanent_prefix),
        )
        for k in keys(s3, bucket, prefix)
        if k not in referenced
    ]


def row_keys(stack: Stack) -> list[str]:
    engine = create_engine(stack.resource_database_url)
    try:
        with engine.connect() as conn:
            return [r.key for r in conn.execute(text("SELECT key FROM resources"))]
    finally:
        engine.dispose()


def keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def run_chaos(seed: int, duration: float, sandbox: Sandbox, s3_url: str, log_dir: Path) -> Report:
    rng, report, ledger = random.Random(seed), Report(seed, duration), Ledger()
    s3 = make_s3_client(S3Settings(s3_endpoint_url=s3_url))
    counts: Counter[str] = Counter()
    rounds: Counter[str] = Counter()
    with contextlib.ExitStack() as exit_stack:
        stack, proxies, vhost = proxied_stack(sandbox, s3_url, log_dir, exit_stack)
        restart_broker = partial(
            sandbox.rabbitmqctl, "close_all_connections", "-p", vhost, "chaos: broker restart"
        )
        targets = Targets(stack, proxies, restart_broker)
        until = time.monotonic() + duration
        stop = threading.Event()
        threads = [
            threading.Thread(target=clients, args=(stack, ledger, rng, stop), daemon=True),
            threading.Thread(
                target=reconciling, args=(stack_stores(stack, s3), stop, rounds), daemon=True
            ),
        ]
        for thread in threads:
            thread.start()
        try:
            schedules = [
                threading.Thread(
                    target=faults, args=(targets, random.Random(seed + n), until, counts)
                )
                for n in (1, 2)
            ]
            for schedule in schedules:
                schedule.start()
            for schedule in schedules:
                schedule.join()
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        healed = time.monotonic()
        if converge(stack, ledger, s3, healed + CONVERGE_SECONDS):
            report.seconds_to_converge = round(time.monotonic() - healed, 1)
        check(stack, ledger, s3, report)
        report.parked = dead_letter_depths(sandbox, vhost)
    report.uploads, report.accepted = ledger.attempts, len(ledger.uploaded) + len(ledger.deleted)
    report.reconcile_rounds = dict(rounds)
    report.deletes, report.faults, report.wrong = (
        ledger.deletes,
        dict(counts),
        report.wrong + ledger.wrong,
    )
    return report


def dead_letter_depths(sandbox: Sandbox, vhost: str) -> dict[str, int]:
    listing = sandbox.rabbitmqctl(
        "list_queues", "-p", vhost, "--no-table-headers", "name", "messages"
    )
    depths = dict(line.split("\t") for line in listing.splitlines() if line.strip())
    queues = (RESOURCE_UPLOADED, RESOURCE_PROCESSED, RESOURCE_DELETED)
    return {f"{q}.dlq": int(depths.get(f"{q}.dlq", 0)) for q in queues}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.testing.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=float, default=120.0)
    parser.add_argument("--report", type=Path, default=Path("chaos-report.json"))
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="chaos-logs-"))
    with servers.local() as rabbitmqctl:
        started = localstack.start()
        try:
            with Sandbox("chaos", rabbitmqctl=rabbitmqctl) as sandbox:
                s3 = localstack.endpoint()
                report = run_chaos(args.seed, args.duration, sandbox, s3, log_dir)
        finally:
            if started is not None:
                localstack.stop_process(started)
    args.report.write_text(
        json.dumps({**asdict(report), "violations": report.violations}, indent=2)
    )
    print(json.dumps({**asdict(report), "violations": report.violations}, indent=2))
    print(f"report: {args.report}; service logs: {log_dir}", file=sys.stderr)
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
