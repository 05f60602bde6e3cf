"""The parts `make demo` is told with: a sandbox of its own on this machine's servers, probes of
the Resource Service's storage breaker, one upload measured, and the table of requests.

`devstack/demo/__main__.py` is the story; everything here is plumbing it should not have to show.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from rich.table import Table
from rich.text import Text

from devstack import localstack
from devstack.testing.mp3 import make_mp3
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack, wait_until

SOURCES = ("live", "last_good", "stub")
STATE_STYLE = {"CLOSED": "green", "OPEN": "bold red", "HALF_OPEN": "yellow"}
_LOOKUP = re.compile(r'^storage_lookup_total\{source="(\w+)"\} (\S+)$', re.MULTILINE)


@dataclass
class DemoSandbox:
    """S3 if none answers, plus databases and a RabbitMQ vhost named `demo_*`, all removed at
    the end (databases and vhost kept with DEMO_KEEP=1)."""

    resources: Sandbox = field(default_factory=lambda: Sandbox("demo"))
    localstack: subprocess.Popen[bytes] | None = None

    @property
    def token(self) -> str:
        return self.resources.token

    @property
    def s3_endpoint_url(self) -> str:
        return localstack.endpoint()

    def database_url(self, service: str) -> str:
        """For `start_stack`: the services create their database on start."""
        return self.resources.database_url(service)

    def open(self) -> str:
        """Start what is missing; returns the vhost's AMQP URL."""
        self.localstack = localstack.start()
        return self.resources.vhost("demo")[1]

    def close(self) -> list[str]:
        """Undo `open`, going on past a step that fails; says what it did."""
        if os.environ.get("DEMO_KEEP") == "1":
            kept = ", ".join(self.resources.databases + self.resources.vhosts)
            done = [f"kept (DEMO_KEEP=1) {kept}"]
        else:
            done = self.resources.close()
        if self.localstack is not None:
            localstack.stop_process(self.localstack)
            done.append("stopped LocalStack")
        return done


@dataclass
class Probe:
    """What the Resource Service says about its storage breaker: /health, /metrics, its log."""

    http: httpx2.Client
    url: str
    log_path: Path
    seen: list[dict[str, Any]] = field(default_factory=list)  # every transition read so far
    _log_offset: int = 0

    def breaker(self) -> dict[str, Any]:
        health: dict[str, Any] = self.http.get(f"{self.url}/health").json()
        breaker: dict[str, Any] = health["checks"]["storageBreaker"]
        return breaker

    def lookups(self) -> Counter[str]:
        text = self.http.get(f"{self.url}/metrics").text
        return Counter({source: float(value) for source, value in _LOOKUP.findall(text)})

    def transitions(self) -> list[dict[str, Any]]:
        """`circuit_breaker_transition` events logged since the last call."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            lines = log.readlines()
        complete = lines if not lines or lines[-1].endswith(b"\n") else lines[:-1]
        self._log_offset += sum(len(line) for line in complete)
        events = []
        for line in complete:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if event.get("event") == "circuit_breaker_transition":
                    events.append(event)
        self.seen += events
        return events


@dataclass
class Upload:
    number: int
    phase: str
    title: str
    status: int  # 0: no HTTP answer at all
    millis: float
    resource_id: int | None
    breaker: dict[str, Any]
    lookups: Counter[str]  # what served storage lookups meanwhile (uploads and moves)


def upload(stack: Stack, probe: Probe, number: int, phase: str) -> Upload:
    title = f"Demo song {number}"
    data = make_mp3(2, title=title, artist="The Breakers", album="Failure Demo", year=2024)
    before = probe.lookups()
    started = time.perf_counter()
    try:
        response = stack.upload(data)
        status = response.status_code
        resource_id = response.json()["id"] if status == 200 else None
    except httpx2.HTTPError:
        status, resource_id = 0, None
    millis = (time.perf_counter() - started) * 1000
    return Upload(
        number, phase, title, status, millis, resource_id, probe.breaker(), probe.lookups() - before
    )


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, "magenta"))


def request_table(title: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in ("#", "HTTP", "ms", "id"):
        table.add_column(name, justify="right")
    table.add_column("breaker after", min_width=13)
    table.add_column("fail %", justify="right")
    for source in SOURCES:
        table.add_column(f"Δ{source}", justify="right")
    return table


def add_row(table: Table, up: Upload) -> None:
    rate = up.breaker.get("failure_rate", -1)
    fast = "green" if up.millis < 300 else "yellow"
    table.add_row(
        str(up.number),
        Text(str(up.status or "ERR"), style="green" if up.status == 200 else "bold red"),
        Text(f"{up.millis:,.0f}", style=fast),
        str(up.resource_id or "-"),
        state_text(up.breaker.get("state", "?")),
        "-" if rate < 0 else f"{rate:.0f}",
        *(f"+{up.lookups[s]:.0f}" if up.lookups[s] else "·" for s in SOURCES),
    )


def transition_line(event: dict[str, Any]) -> str:
    rate = event.get("failure_rate", -1)
    why = "" if rate is None or rate < 0 else f" (failure rate {rate:.0f}%)"
    when = str(event.get("timestamp", ""))[11:23]
    return (
        f"  [dim]{when}[/] [bold]{event.get('breaker')}[/] breaker: "
        f"[{STATE_STYLE.get(event['from_state'], '')}]{event['from_state']}[/] → "
        f"[{STATE_STYLE.get(event['to_state'], '')}]{event['to_state']}[/]{why}"
    )


def wait_all_permanent(stack: Stack, ids: list[int], timeout: float) -> dict[int, Any]:
    """Each resource row once it is PERMANENT, or as last seen when the deadline passes."""
    rows: dict[int, Any] = {}

    def all_permanent() -> bool:
        rows.update({i: stack.resource_row(i) for i in ids})
        return all(r is not None and r.state == "PERMANENT" for r in rows.values())

    with contextlib.suppress(AssertionError):  # past the deadline: the summary shows what is
        wait_until(all_permanent, timeout)
    return rows
