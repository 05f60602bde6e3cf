"""supervisord as `make run`'s process manager: its config, its control socket, its events.

supervisord (PyPI `supervisor`) already starts, stops, signals and restarts processes and
answers on a socket; `make run` and `make ps|stop|...` only translate compose's words into its
XML-RPC calls and its log lines into one sentence per event.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import xmlrpc.client
from dataclasses import dataclass
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
    return "\n".join(lines) + "\n"


def write_run(paths: RunPaths, programs: list[Program], settings: RunSettings) -> None:
    (paths.dir / "logs").mkdir(parents=True, exist_ok=True)
    paths.log.write_text("")  # this run's events only
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


# supervisord's own log lines, e.g. "2026-12-01 20:31:02,118 WARN exited: storage-service
# (terminated by SIGKILL; not expected)".
EVENT = re.compile(r"^\S+ \S+ \w+ (?P<kind>spawned|exited|stopped|gave up): '?(?P<name>[\w-]+)'?")
REASON = re.compile(r"\((?P<reason>[^;)]*)")


@dataclass(frozen=True)
class Event:
    kind: str  # spawned | exited | stopped | gave up
    name: str
    reason: str  # "killed by SIGKILL", "exit status 1", "pid 1234", ...
    expected: bool = False  # an exit the program's exitcodes allow (status 0)


def parse_event(line: str) -> Event | None:
    match = EVENT.match(line)
    if match is None:
        return None
    kind, name = match["kind"], match["name"]
    rest = line[match.end() :]
    if kind == "spawned":
        reason = rest.strip().removeprefix("with ")
    elif kind == "gave up":
        reason = "it kept exiting right after start"
    else:
        found = REASON.search(rest)
        reason = found["reason"] if found else ""
        # "terminated by SIGKILL": a kill when it exited on its own, the stop's signal otherwise
        reason = reason.replace("terminated by ", "killed by " if kind == "exited" else "")
    return Event(kind, name, reason, expected="; expected)" in rest)


def last_exits(log_text: str) -> dict[str, Event]:
    """Each service's last exit, stop or give-up in this run, from supervisord's log."""
    exits: dict[str, Event] = {}
    for line in log_text.splitlines():
        event = parse_event(line)
        if event is not None and event.kind != "spawned":
            exits[event.name] = event
    return exits
