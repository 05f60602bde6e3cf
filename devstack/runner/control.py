"""`make ps|stop|start|restart|kill|pause|unpause|logs|down`: one service of a running `make run`.

    python -m devstack.runner.control ps
    python -m devstack.runner.control stop|start|restart|kill|pause|unpause|logs NAME
    python -m devstack.runner.control down

Names and meanings are compose's: stop = SIGTERM and wait, kill = SIGKILL, pause = SIGSTOP,
unpause = SIGCONT. Each call goes to supervisord's socket in the run folder (`RUN_DIR`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable

import psutil

from devstack.runner import supervisor
from devstack.runner.main import is_frozen
from devstack.runner.services import Health, Program, RunSettings, health, programs
from devstack.runner.supervisor import ProcessInfo, RpcError, RunPaths, Supervisord, last_exits

ACTIONS = ["stop", "start", "restart", "kill", "pause", "unpause", "logs"]


class ControlError(Exception):
    """One clear line for the person at the terminal, and a non-zero exit."""


class Control:
    def __init__(self, settings: RunSettings):
        self.paths = RunPaths(settings.dir)
        self.programs = {p.name: p for p in programs(settings)}
        if not supervisor.answers(self.paths) or not self.paths.stack.exists():
            raise ControlError("no `make run` is up (start one with: make run)")
        self.rpc = Supervisord(self.paths)

    def program(self, name: str | None) -> Program:
        choices = ", ".join(self.programs)
        if not name:
            raise ControlError(f"name a service: SERVICE=<name>, one of {choices}")
        if name not in self.programs:
            raise ControlError(f"unknown service '{name}': use one of {choices}")
        return self.programs[name]

    def info(self, name: str) -> ProcessInfo:
        return self.rpc.info(name)

    def running_pid(self, name: str) -> int:
        info = self.info(name)
        if info["statename"] != "RUNNING":
            raise ControlError(f"{name} is not running ({self.state(info)})")
        return int(info["pid"])

    def state(self, info: ProcessInfo) -> str:
        if info["statename"] == "RUNNING":
            return "paused" if is_frozen(info["pid"]) else "running"
        return {"STARTING": "starting", "BACKOFF": "restarting", "STOPPING": "stopping"}.get(
            info["statename"], "exited"
        )

    # --- the actions -------------------------------------------------------------------------

    def stop(self, program: Program) -> str:
        if self.info(program.name)["statename"] not in ("RUNNING", "STARTING", "BACKOFF"):
            return f"{program.name} is not running"
        self.resume(program.name)  # a frozen process cannot handle SIGTERM
        self.rpc.stop(program.name)
        return f"{program.name} stopped"

    def start(self, program: Program) -> str:
        info = self.info(program.name)
        if info["statename"] in ("RUNNING", "STARTING"):
            return f"{program.name} is already running (pid {info['pid']})"
        outside = listener_pid(program.port)
        if outside is not None:
            raise ControlError(
                f"{program.name}'s port {program.port} is served from outside make run "
                f"(pid {outside}); stop that process first"
            )
        self.rpc.start(program.name)
        deadline = time.monotonic() + 90
        while health(program).status not in ("UP", "DEGRADED"):
            if self.info(program.name)["statename"] != "RUNNING" or time.monotonic() > deadline:
                raise ControlError(
                    f"{program.name} did not come up; see: make logs SERVICE={program.name}"
                )
            time.sleep(0.1)
        return f"{program.name} started (pid {self.info(program.name)['pid']}), {program.url}"

    def restart(self, program: Program) -> str:
        self.stop(program)
        return self.start(program)

    def kill(self, program: Program) -> str:
        pid = self.running_pid(program.name)
        self.rpc.signal(program.name, "KILL")
        wait_gone(pid)
        return f"{program.name} killed (SIGKILL, pid {pid})"

    def pause(self, program: Program) -> str:
        pid = self.running_pid(program.name)
        self.rpc.signal(program.name, "STOP")
        return f"{program.name} paused (SIGSTOP, pid {pid})"

    def unpause(self, program: Program) -> str:
        pid = self.running_pid(program.name)
        self.resume(program.name)
        return f"{program.name} unpaused (SIGCONT, pid {pid})"

    def resume(self, name: str) -> None:
        info = self.info(name)
        if info["statename"] == "RUNNING" and is_frozen(info["pid"]):
            self.rpc.signal(name, "CONT")

    def logs(self, program: Program) -> str:
        log = self.paths.service_log(program.name)
        # Follows until Ctrl-C, even when started from a background job (a CI script, `cmd &`):
        # a shell without job control starts those with SIGINT ignored, and exec keeps that.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp("tail", ["tail", "-n", "50", "-F", str(log)])
        return ""  # not reached

    def down(self) -> str:
        for name in self.programs:
            self.resume(name)
        self.rpc.shutdown()
        deadline = time.monotonic() + supervisor.STOP_WAIT_SECONDS + 15
        while self.paths.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return "stopped everything make run started"

    # --- ps ----------------------------------------------------------------------------------

    def ps(self) -> str:
        recorded = self.paths.events.read_text() if self.paths.events.exists() else ""
        exits = last_exits(recorded)
        header = ("SERVICE", "STATE", "PID", "PORT", "HEALTH", "DETAILS")
        rows = [header]
        for name, program in self.programs.items():
            info = self.info(name)
            state, pid = self.state(info), str(info["pid"] or "-")
            details = ""
            if state == "exited":
                outside = listener_pid(program.port)
                if outside is not None:
                    state, pid, details = "outside", str(outside), "served from outside make run"
                elif name in exits:
                    details = f"{exits[name].kind} ({exits[name].reason})"
                else:
                    details = "not started"
            status = health(program) if state in ("running", "outside") else Health("DOWN", {})
            rows.append(
                (
                    name,
                    state,
                    pid,
                    str(program.port),
                    status.status,
                    details or breaker_summary(status),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )


def breaker_summary(status: Health) -> str:
    """The Resource Service's breakers as `make ps` shows them: `storage breaker CLOSED`."""
    checks = status.body.get("checks", {})
    return ", ".join(
        f"{check.get('name', name)} breaker {check['state']}"
        for name, check in checks.items()
        if isinstance(check, dict) and "state" in check and name.endswith("Breaker")
    )


def listener_pid(port: int) -> int | None:
    """The pid listening on 127.0.0.1:port, whoever started it; None when the port is free."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    with_deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid) and time.monotonic() < with_deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def dispatch(action: str, name: str | None) -> str:
    settings = RunSettings()
    if action == "down" and not supervisor.answers(RunPaths(settings.dir)):
        return "no `make run` is up: nothing to stop"
    control = Control(settings)
    if action == "ps":
        return control.ps()
    if action == "down":
        return control.down()
    handler: Callable[[Program], str] = getattr(control, action)
    return handler(control.program(name))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.runner.control")
    parser.add_argument("action", choices=["ps", "down", *ACTIONS])
    parser.add_argument("service", nargs="?", default=None)
    args = parser.parse_args()
    try:
        print(dispatch(args.action, args.service), flush=True)
    except ControlError as exc:
        print(f"make {args.action}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except RpcError as exc:
        print(f"make {args.action}: make run stopped answering ({exc})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
