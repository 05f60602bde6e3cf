"""supervisord as `make run`'s process manager: its config, its control socket, its events.

supervisord (PyPI `supervisor`) already starts, stops, signals and restarts processes and
answers on a socket; `make run` and `make ps|stop|...` only translate compose's words into its
XML-RPC calls, and its process state events into one sentence each. The events reach us through
supervisord's event-listener protocol (`devstack.runner.listener`, one JSON line per event in
`events.jsonl`); only an exit's cause is read from supervisord's log line, the one place it
records it (PROCESS_STATE_EXITED carries `expected` and `pid`, not the status or the signal).
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import xmlrpc.client
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from devstack import REPO
from devstack.runner.services import Program, RunSettings

GROUP = "platform"  # one group, so that a shutdown stops every service at once, not in turn
# Seconds a stop waits for SIGTERM before SIGKILL; short, so that even a frozen service is gone
# well inside the 10 s the run promises after its own death.
STOP_WAIT_SECONDS = 5


@dataclass(frozen=True)
class RunPaths:
    dir: Path

    @property
    def socket(self) -> Path:
        return self.dir / "supervisor.sock"

    @property
    def config(self) -> Path:
        return self.dir / "supervisord.conf"

    @property
    def log(self) -> Path:
        return self.dir / "supervisord.log"

    @property
    def events(self) -> Path:
        """Process state changes, one JSON line each (`devstack.runner.listener` writes it)."""
        return self.dir / "events.jsonl"

    @property
    def stack(self) -> Path:
        """What this run serves where: written by `make run`, read by `make ps`."""
        return self.dir / "stack.json"

    def service_log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"


def _quote(value: str) -> str:
    # supervisord expands %(name)s in its values, so a literal % is written twice.
    return '"' + value.replace("%", "%%").replace('"', '\\"') + '"'


def _as_user(program: Program) -> list[str]:
    return ["--user", program.user] if program.user else []


def render_config(paths: RunPaths, programs: list[Program], restart: str) -> str:
    child = [sys.executable, "-m", "devstack.runner.child"]
    lines = [
        "[supervisord]",
        f"logfile={paths.log}",
        "loglevel=info",
        f"pidfile={paths.dir / 'supervisord.pid'}",
        f"childlogdir={paths.dir / 'logs'}",
        "nodaemon=true",
        "",
        "[unix_http_server]",
        f"file={paths.socket}",
        "chmod=0700",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{paths.socket}",
        "",
        f"[group:{GROUP}]",
        f"programs={','.join(p.name for p in programs)}",
    ]
    # "no": a killed service stays down. "on-failure": an unexpected exit restarts it, and one
    # that keeps dying within startsecs waits 1, 2, 3... s between tries (supervisord's backoff).
    on_failure = restart == "on-failure"
    for priority, program in enumerate(programs, start=1):
        env = ",".join(f"{k}={_quote(v)}" for k, v in program.env.items())
        lines += [
            "",
            f"[program:{program.name}]",
            f"command={' '.join([*child, *_as_user(program), *program.command])}",
            f"directory={REPO}",  # devstack is imported from the checkout, not installed
            "autostart=false",
            f"autorestart={'unexpected' if on_failure else 'false'}",
            "exitcodes=0",
            f"startsecs={3 if on_failure else 0}",
            f"startretries={10 if on_failure else 0}",
            f"stopsignal={program.stop_signal}",
            f"stopwaitsecs={STOP_WAIT_SECONDS}",
            f"priority={priority}",
            f"stdout_logfile={paths.service_log(program.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=1",
            "redirect_stderr=true",
            *([f"environment={env}"] if env else []),
        ]
    return "\n".join([*lines, "", *_listener_section(paths, child)]) + "\n"


def _listener_section(paths: RunPaths, child: list[str]) -> list[str]:
    """supervisord tells `devstack.runner.listener` of every process state change."""
    listener = [sys.executable, "-m", "devstack.runner.listener", str(paths.events), str(paths.log)]
    return [
        "[eventlistener:events]",
        f"command={' '.join([*child, *listener])}",
        f"directory={REPO}",
        "events=PROCESS_STATE",
        "autorestart=true",
        f"stderr_logfile={paths.service_log('events')}",
    ]


def write_run(paths: RunPaths, programs: list[Program], settings: RunSettings) -> None:
    (paths.dir / "logs").mkdir(parents=True, exist_ok=True)
    paths.log.write_text("")  # this run's events only
    paths.events.write_text("")
    paths.config.write_text(render_config(paths, programs, settings.restart))
    stack = {p.name: {"port": p.port, "url": p.url, "health": p.health_path} for p in programs}
    paths.stack.write_text(json.dumps({"restart": settings.restart, "services": stack}))


ProcessInfo = dict[str, Any]  # supervisord's getProcessInfo: name, statename, pid, ...
# supervisord gone, or refusing the call; or going away in the middle of one, which leaves the
# connection in a state http.client refuses to use again (CannotSendRequest).
RpcError = (OSError, xmlrpc.client.Error, http.client.HTTPException)


class Supervisord:
    """The calls `make run` and `make ps|stop|...` make on supervisord's XML-RPC socket."""

    def __init__(self, paths: RunPaths) -> None:
        transport = SupervisorTransport(None, None, f"unix://{paths.socket}")
        self._rpc: Any = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def state(self) -> str:
        return str(self._rpc.supervisor.getState()["statename"])

    def info(self, name: str) -> ProcessInfo:
        return cast(ProcessInfo, self._rpc.supervisor.getProcessInfo(f"{GROUP}:{name}"))

    def infos(self) -> list[ProcessInfo]:
        return cast(list[ProcessInfo], self._rpc.supervisor.getAllProcessInfo())

    def start(self, name: str) -> None:
        self._rpc.supervisor.startProcess(f"{GROUP}:{name}", True)

    def stop(self, name: str) -> None:
        self._rpc.supervisor.stopProcess(f"{GROUP}:{name}", True)

    def signal(self, name: str, signal: str) -> None:
        self._rpc.supervisor.signalProcess(f"{GROUP}:{name}", signal)

    def shutdown(self) -> None:
        self._rpc.supervisor.shutdown()


def answers(paths: RunPaths) -> bool:
    """True when a supervisord of a `make run` answers on this run folder's socket."""
    if not paths.socket.exists():
        return False
    try:
        return Supervisord(paths).state() == "RUNNING"
    except RpcError:
        return False


# supervisord's log line of an exit or a stop, e.g. "2026-12-01 20:31:02,118 WARN exited:
# storage-service (terminated by SIGKILL; not expected)": the cause, in parentheses.
ENDED = re.compile(r"^\S+ \S+ \w+ (?P<kind>exited|stopped): (?P<name>[\w-]+) \((?P<cause>[^;)]*)")


@dataclass(frozen=True)
class Event:
    kind: str  # spawned | exited | stopped | gave up
    name: str
    reason: str  # "killed by SIGKILL", "exit status 1", "pid 1234", ...
    expected: bool = False  # an exit the program's exitcodes allow (status 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Event:
        return cls(**json.loads(line))


def event_of(state: str, fields: dict[str, str], read_log: Callable[[], str]) -> Event | None:
    """The Event of supervisord's PROCESS_STATE_<state> with its payload's `fields`; None for
    the states nobody is told about (STARTING, BACKOFF, STOPPING). `read_log` gives
    supervisord's log, read only for an exit or a stop, whose cause only it records."""
    name = fields["processname"]
    if state == "RUNNING":
        return Event("spawned", name, f"pid {fields['pid']}")
    if state == "FATAL":
        return Event("gave up", name, "it kept exiting right after start")
    if state in ("EXITED", "STOPPED"):
        kind = state.lower()
        expected = fields.get("expected") == "1"
        return Event(kind, name, logged_cause(read_log(), kind, name), expected)
    return None


def logged_cause(log_text: str, kind: str, name: str) -> str:
    """Why `name` last exited or stopped, as supervisord logged it: "killed by SIGKILL" (an
    exit by a signal: a kill), "exit status 1", or a stop's signal ("SIGTERM")."""
    cause = ""
    for line in log_text.splitlines():
        found = ENDED.match(line)
        if found and (found["kind"], found["name"]) == (kind, name):
            cause = found["cause"]
    return cause.replace("terminated by ", "killed by " if kind == "exited" else "")


def events_in(text: str) -> list[Event]:
    """The events of `events.jsonl`'s text, in order."""
    return [Event.from_json(line) for line in text.splitlines() if line.strip()]


def last_exits(events_text: str) -> dict[str, Event]:
    """Each service's last exit, stop or give-up in this run."""
    return {event.name: event for event in events_in(events_text) if event.kind != "spawned"}
