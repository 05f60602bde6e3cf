"""`make demo`: the failure walkthrough, automated and narrated.

Freeze the Storage Service and watch the Resource Service's circuit breaker open while uploads
go on, served by the last good answer; thaw it and watch the breaker close again. Every upload
must still end PERMANENT with its tags in the Song Service. Runs on a sandbox of its own
(fresh databases and RabbitMQ vhost) and removes it at the end, Ctrl-C included.

    .venv/bin/python -m devstack.demo   (DEMO_KEEP=1 keeps the databases, vhost and logs)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table

from devstack.demo.steps import (
    DemoSandbox,
    Probe,
    Upload,
    add_row,
    request_table,
    state_text,
    transition_line,
    upload,
    wait_all_permanent,
)
from devstack.runner import servers
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import Stack, start_stack

console = Console()
# Small numbers so the story plays in seconds, not minutes.
BREAKER_ENV = {
    "STORAGE_TIMELIMITER_TIMEOUT_DURATION": "1",
    "STORAGE_BREAKER_WAIT_DURATION_IN_OPEN_STATE": "5",
    "STORAGE_BREAKER_MINIMUM_NUMBER_OF_CALLS": "3",
    "STORAGE_BREAKER_SLIDING_WINDOW_SIZE": "5",
    "STORAGE_BREAKER_PERMITTED_NUMBER_OF_CALLS_IN_HALF_OPEN_STATE": "2",
}
FROZEN_UPLOADS = 8
RECOVERY_PACE_SECONDS = 0.5
RECOVERY_MAX_UPLOADS = 30
PERMANENT_DEADLINE_SECONDS = 30
FAST_MS = 300


def step(title: str, story: str) -> None:
    console.print()
    console.rule(f"[bold cyan]{title}")
    console.print(Panel(story, border_style="cyan"))


def start(sandbox: DemoSandbox) -> tuple[Stack, Probe]:
    step(
        "1. Start the platform",
        "S3 (LocalStack, started if none answers), then Storage, Song, Resource Service and one "
        "Resource Processor as real processes on free ports, nginx in front of them as the "
        "front door (every upload and song read below goes through it), with fresh databases "
        f"[bold]demo_<service>_{sandbox.token}_<n>[/] and RabbitMQ vhost "
        f"[bold]demo_demo_{sandbox.token}_0[/].",
    )
    with console.status("starting S3 and the RabbitMQ vhost..."):
        rabbitmq_url = sandbox.open()
    log_dir = Path(tempfile.mkdtemp(prefix="demo-logs-"))
    with console.status("starting the services and waiting for /health..."):
        stack = start_stack(
            sandbox.database_url,
            rabbitmq_url,
            sandbox.s3_endpoint_url,
            log_dir,
            resource_env=BREAKER_ENV,
            with_gateway=True,
        )
    for service in stack.services:
        console.print(f"  [green]✔[/] {service.package:<19} {service.url}")
    assert stack.gateway is not None
    console.print(f"  [green]✔[/] {'gateway (nginx)':<19} {stack.gateway.url}  ← uploads and songs")
    console.print(f"  service logs: {log_dir}")
    console.print(f"  watch the breaker live: {stack.resource.url}/dashboard")
    settings = "\n".join(f"  {name}={value}" for name, value in BREAKER_ENV.items())
    console.print(f"Storage breaker settings (failure rate threshold: default 50%):\n{settings}")
    for breaker in stack.http.get(
        f"{stack.resource.url}/admin/breakers", headers=stack.admin_headers
    ).json():
        console.print(f"GET /admin/breakers → {', '.join(f'{k}={v}' for k, v in breaker.items())}")
    return stack, Probe(stack.http, stack.resource.url, log_dir / "resource.log")


def healthy_upload(stack: Stack, probe: Probe) -> Upload:
    step("2. Upload while everything is healthy", "One MP3, all the way to PERMANENT.")
    up = upload(stack, probe, 1, "healthy")
    rid = up.resource_id
    row = wait_all_permanent(stack, [rid], 15)[rid] if rid else None
    song = stack.song_of(rid).json() if rid and row is not None else {}
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("id", str(up.resource_id))
    facts.add_row("answer", f"HTTP {up.status} in {up.millis:,.0f} ms")
    facts.add_row("breaker after", state_text(up.breaker["state"]))
    if row is not None:
        facts.add_row("ended in", f"{row.bucket}/{row.key}")
        facts.add_row("state", f"[green]{row.state}[/]")
    facts.add_row("Song Service", ", ".join(f"{k}: {v}" for k, v in song.items()))
    console.print(Padding(facts, (0, 2)))
    return up


def show_transitions(probe: Probe) -> None:
    for event in probe.transitions():
        console.print(transition_line(event))


def frozen_uploads(stack: Stack, probe: Probe, first: int) -> list[Upload]:
    step(
        "3. Freeze the Storage Service (SIGSTOP)",
        "The same as [bold]docker compose pause storage-service[/]: the process stays and its "
        "port accepts connections, but nothing answers, the worst kind of outage. Each lookup "
        "waits for the 1 s time limit until the breaker OPENs; then uploads are answered "
        "at once from the last good answer. Δ columns: which source served storage lookups "
        "meanwhile (uploads and the background moves to PERMANENT).",
    )
    stack.storage.signal(signal.SIGSTOP)
    table, uploads = request_table("Uploads while Storage is frozen"), []
    with Live(table, console=console, refresh_per_second=8):
        for number in range(first, first + FROZEN_UPLOADS):
            uploads.append(upload(stack, probe, number, "frozen"))
            add_row(table, uploads[-1])
            show_transitions(probe)
    console.print()
    return uploads


def thawed_uploads(stack: Stack, probe: Probe, first: int) -> list[Upload]:
    step(
        "4. Thaw it (SIGCONT) and keep uploading",
        f"One upload every {RECOVERY_PACE_SECONDS} s. After the 5 s wait in OPEN, the next call "
        "is let through as a trial (HALF_OPEN, 2 permitted); when the trials succeed the breaker "
        "CLOSEs and lookups are live again.",
    )
    stack.storage.signal(signal.SIGCONT)
    table, number = request_table("Uploads after the thaw"), first
    uploads: list[Upload] = []
    with Live(table, console=console, refresh_per_second=8):
        while len(uploads) < RECOVERY_MAX_UPLOADS:
            next_at = time.monotonic() + RECOVERY_PACE_SECONDS
            uploads.append(upload(stack, probe, number, "thawed"))
            add_row(table, uploads[-1])
            show_transitions(probe)
            number += 1
            if uploads[-1].breaker["state"] == "CLOSED":
                break
            time.sleep(max(0.0, next_at - time.monotonic()))
    console.print()
    console.print("One more upload, now that the breaker is CLOSED:")
    table = request_table("Served live")
    uploads.append(upload(stack, probe, number, "live"))
    add_row(table, uploads[-1])
    console.print(table)
    return uploads


def summary(stack: Stack, probe: Probe, uploads: list[Upload]) -> bool:
    step("5. Where every upload ended", "Each must be PERMANENT, with its tags saved.")
    ids = [up.resource_id for up in uploads if up.resource_id is not None]
    with console.status(f"waiting up to {PERMANENT_DEADLINE_SECONDS} s for every move..."):
        rows = wait_all_permanent(stack, ids, PERMANENT_DEADLINE_SECONDS)
    table = Table(header_style="bold")
    for name in ("id", "phase", "state", "bucket/key", "song name"):
        table.add_column(name)
    names = {}
    for up in uploads:
        row = rows.get(up.resource_id) if up.resource_id else None
        song = stack.song_of(up.resource_id) if up.resource_id and row is not None else None
        names[up.resource_id] = song.json()["name"] if song and song.status_code == 200 else None
        state = row.state if row is not None else "missing"
        table.add_row(
            str(up.resource_id or "-"),
            up.phase,
            f"[{'green' if state == 'PERMANENT' else 'red'}]{state}[/]",
            f"{row.bucket}/{short(row.key)}" if row is not None else "-",
            names[up.resource_id] or "[red]none[/]",
        )
    console.print(table)
    frozen = [up for up in uploads if up.phase == "frozen"]
    opened = next((i for i, up in enumerate(frozen) if up.breaker["state"] == "OPEN"), None)
    served_open = frozen[opened + 1 :] if opened is not None else []
    checks = [
        ("every upload answered 200", all(up.status == 200 for up in uploads)),
        ("the breaker OPENed while Storage was frozen", opened is not None),
        (
            f"uploads while OPEN answered in < {FAST_MS} ms",
            bool(served_open) and all(up.millis < FAST_MS for up in served_open),
        ),
        ("the breaker CLOSEd again after the thaw", uploads[-2].breaker["state"] == "CLOSED"),
        (
            "HALF_OPEN → CLOSED was logged",
            any((e["from_state"], e["to_state"]) == ("HALF_OPEN", "CLOSED") for e in probe.seen),
        ),
        ("the last upload was served live", uploads[-1].lookups["live"] >= 1),
        ("every upload is PERMANENT", all(r and r.state == "PERMANENT" for r in rows.values())),
        ("every upload has its tags", all(names.get(up.resource_id) == up.title for up in uploads)),
        (
            f"the front door served all {len(uploads)} uploads",
            through_the_door(stack) == len(uploads),
        ),
    ]
    for claim, ok in checks:
        console.print(f"  {'[green]✔' if ok else '[red]✘'}[/] {claim}")
    return all(ok for _, ok in checks)


def through_the_door(stack: Stack) -> int:
    """The uploads the gateway's access log shows answered 200 by a Resource Service."""
    assert stack.gateway is not None
    log = stack.gateway.access_log()
    return sum(
        1 for r in log if (r["method"], r["path"], r["status"]) == ("POST", "/resources", "200")
    )


def short(key: str) -> str:
    """permanent/7648789a-e344-....mp3 -> permanent/7648789a….mp3"""
    folder, _, name = key.rpartition("/")
    return f"{folder}/{name[:8]}….mp3" if len(name) > 12 else key


def clean_up(sandbox: DemoSandbox, stack: Stack | None) -> None:
    console.print()
    console.rule("[bold cyan]6. Clean up")
    if stack is not None:
        stack.storage.signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        stack.stop()
        console.print("  stopped the services")
    for line in sandbox.close():
        console.print(f"  {line}")


def _terminate(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # Ctrl-C and SIGTERM both end the story early, through the clean-up, even when started
    # from a shell that ignores SIGINT for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    console.rule("[bold]Failure demo: the storage lookup's circuit breaker")
    started = time.monotonic()
    stack, passed = None, False
    with servers.local() as rabbitmqctl:  # ours only when none answers
        sandbox = DemoSandbox(Sandbox("demo", rabbitmqctl=rabbitmqctl))
        try:
            stack, probe = start(sandbox)
            uploads = [healthy_upload(stack, probe)]
            uploads += frozen_uploads(stack, probe, first=2)
            uploads += thawed_uploads(stack, probe, first=2 + FROZEN_UPLOADS)
            passed = summary(stack, probe, uploads)
        except KeyboardInterrupt:
            console.print("\n[yellow]Interrupted.[/]")
        except Exception as exc:  # say what broke, then still clean up
            console.print(f"\n[bold red]The demo broke:[/] {exc!r}")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)  # let the clean-up finish
            clean_up(sandbox, stack)
    if passed and stack is not None and os.environ.get("DEMO_KEEP") != "1":
        shutil.rmtree(stack.log_dir, ignore_errors=True)  # kept when something went wrong
    verdict = "[bold green]PASS" if passed else "[bold red]FAIL"
    console.print(f"\n{verdict}[/] in {time.monotonic() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
