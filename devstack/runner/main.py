"""`make run`: a supervisor, not a chain.

supervisord starts PostgreSQL, RabbitMQ and S3 (LocalStack), each only when nothing answers at
its address (devstack.runner.servers), and every service, each in a process of its own. When one
exits, is killed or frozen, the others keep serving and this terminal says what happened in one
line; `make ps|stop|start|...` act on one service from another terminal (devstack.runner.control).
Ctrl-C or SIGTERM stops everything it started; so does its own death, even by SIGKILL
(devstack.runner.child).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from devstack import REPO, gateway
from devstack.ops.reset import recorded_resources
from devstack.runner import child, servers, supervisor
from devstack.runner.services import (
    GATEWAY,
    LOCALSTACK,
    SERVERS,
    Program,
    RunSettings,
    gateway_settings,
    health,
    programs,
    provision_databases,
)
from devstack.runner.supervisor import Event, RpcError, RunPaths, Supervisord, events_in

WATCH_SECONDS = 0.25
SUPERVISORD = Path(sys.executable).parent / "supervisord"


class StartFailed(RuntimeError):
    pass


def describe(event: Event, restart: str) -> str:
    """One line a person reads at the terminal when a service changes."""
    name = event.name
    again = f"Start it again: make start SERVICE={name}"
    if event.kind == "spawned":
        return f"{name} started ({event.reason})"
    if event.kind == "gave up":
        return f"{name} gave up restarting: {event.reason}. See: make logs SERVICE={name}"
    if event.kind == "stopped":
        return f"{name} stopped ({event.reason}); the others keep running. {again}"
    if restart == "on-failure" and not event.expected:
        again = "Restarting it (RESTART=on-failure)."
    return f"{name} exited ({event.reason}); the others keep running. {again}"


class Run:
    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.paths = RunPaths(settings.dir)
        self.programs = programs(settings)
        self.supervisord: subprocess.Popen[bytes] | None = None
        self.servers_started: list[servers.Server] = []  # ours, not found answering
        self.rpc = Supervisord(self.paths)

    def start_supervisord(self) -> None:
        supervisor.write_run(self.paths, self.programs, self.settings)
        command = [sys.executable, "-m", "devstack.runner.child", "--signal", "TERM"]
        self.supervisord = subprocess.Popen(
            [*command, str(SUPERVISORD), "-c", str(self.paths.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,  # devstack is imported from the checkout, not installed
            start_new_session=True,  # Ctrl-C reaches us; we stop it in order
        )
        deadline = time.monotonic() + 15
        while not supervisor.answers(self.paths):
            if self.supervisord.poll() is not None or time.monotonic() > deadline:
                raise StartFailed(f"supervisord did not start; see {self.paths.log}")
            time.sleep(0.05)

    def prepare_servers(self) -> None:
        """Install and initialise the PostgreSQL and RabbitMQ of our own that will be started
        (nothing answers at their address); then describe the programs again, with the
        binaries an install may just have put in place."""
        settings = self.settings
        self.servers_started = servers.wanted(
            settings.postgres_url, settings.rabbitmq_url, settings.dir
        )
        for server in self.servers_started:
            servers.prepare(server, settings.dir)
        self.programs = programs(settings)

    def prepare_gateway(self) -> None:
        """nginx installed (Debian's, its own service kept stopped) and its configuration."""
        gateway.ensure_installed()
        gateway.write(gateway_settings(self.settings), self.settings.dir / GATEWAY)

    def start_all(self) -> None:
        """PostgreSQL and RabbitMQ (ours, or found), the databases, then everything else."""
        ours = {server.name for server in self.servers_started}
        for program in self.programs[: len(SERVERS)]:
            if program.name in ours:
                self.start_program(program)
            else:
                print(f"{program.name:<19} {program.url}  (found: not started by make run)")
        provision_databases(self.settings)
        for program in self.programs[len(SERVERS) :]:
            self.start_program(program)

    def start_program(self, program: Program) -> None:
        if health(program).status != "DOWN":
            where = "S3 (LocalStack)" if program.name == LOCALSTACK else program.name
            print(
                f"{where} already answers on {program.url}: served from outside make run, "
                "left as it is",
                flush=True,
            )
            return
        self.rpc.start(program.name)
        self.wait_healthy(program, timeout=90 if program.name == LOCALSTACK else 60)
        if program.name in SERVERS:
            data = servers.data_dir(self.settings.dir, program.name, program.user)
            print(f"{program.name:<19} {program.url}  (started by make run, data in {data})")
        else:
            docs = {
                LOCALSTACK: "",
                GATEWAY: "  (the front door: uploads, downloads, deletes, songs to read)",
            }.get(program.name, f"  (docs: {program.url}/docs)")
            print(f"{program.name:<19} {program.url}{docs}", flush=True)
        if program.name == LOCALSTACK:
            self.say_if_files_were_lost()

    def say_if_files_were_lost(self) -> None:
        """A LocalStack this run started is empty: rows left by an earlier run lost their files."""
        count = recorded_resources(self.settings)
        if count:
            print(
                f"S3 (LocalStack) started empty while the resource database holds {count} "
                "resource(s): their files are gone (LocalStack keeps objects in memory). "
                "make reconcile lists them (missing_objects); for a clean start: make down, "
                "then make reset.",
                flush=True,
            )

    def wait_healthy(self, program: Program, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.rpc.info(program.name)
            if info["statename"] not in ("STARTING", "RUNNING"):
                log = self.paths.service_log(program.name)
                raise StartFailed(f"{program.name} {info['statename'].lower()}; its log: {log}")
            if health(program).status in ("UP", "DEGRADED"):
                return
            time.sleep(0.1)
        raise StartFailed(f"{program.name} not healthy on {program.url} after {timeout:.0f} s")

    def watch(self) -> None:
        """Print one line per event until supervisord is gone (`make down`)."""
        offset = self.paths.events.stat().st_size  # start-up events were reported already
        paused: set[str] = set()
        while self.supervisord is not None and self.supervisord.poll() is None:
            with self.paths.events.open() as events:
                events.seek(offset)
                text = events.read()
            whole = text[: text.rfind("\n") + 1]  # a line the listener is still writing waits
            offset += len(whole.encode())
            if not self.shutting_down():  # `make down` stops all: no line per service then
                for event in events_in(whole):
                    print(describe(event, self.settings.restart), flush=True)
            paused = self.report_pauses(paused)
            time.sleep(WATCH_SECONDS)

    def report_pauses(self, paused: set[str]) -> set[str]:
        now = {name for name, pid in self.running_pids().items() if is_frozen(pid)}
        for name in sorted(now - paused):
            print(
                f"{name} paused (SIGSTOP): it answers nothing until "
                f"make unpause SERVICE={name}; the others keep running.",
                flush=True,
            )
        for name in sorted(paused - now):
            print(f"{name} unpaused (SIGCONT)", flush=True)
        return now

    def shutting_down(self) -> bool:
        try:
            return self.rpc.state() != "RUNNING"
        except RpcError:
            return True

    def running_pids(self) -> dict[str, int]:
        try:
            infos = self.rpc.infos()
        except RpcError:  # going away: nothing is running any more
            return {}
        return {i["name"]: i["pid"] for i in infos if i["statename"] == "RUNNING"}

    def shutdown(self) -> None:
        if self.supervisord is None or self.supervisord.poll() is not None:
            return
        for pid in self.running_pids().values():  # a frozen process cannot handle SIGTERM
            with contextlib.suppress(ProcessLookupError):
                psutil.Process(pid).resume()
        with contextlib.suppress(*RpcError):
            self.rpc.shutdown()
        try:
            self.supervisord.wait(supervisor.STOP_WAIT_SECONDS + 15)
        except subprocess.TimeoutExpired:
            self.supervisord.kill()  # its children die with it (devstack.runner.child)
            self.supervisord.wait()

    def stop_epmd(self) -> None:
        """Our broker's epmd outlives it (Erlang starts it as a daemon): ask it to go too."""
        for server in self.servers_started:
            servers.stop_epmd(server)  # a no-op for PostgreSQL


def is_frozen(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_STOPPED
    except psutil.Error:
        return False


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run the way Ctrl-C does


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack")
    parser.add_argument("--restart", choices=["no", "on-failure"], default=None)
    args = parser.parse_args()
    settings = RunSettings(**({"restart": args.restart} if args.restart else {}))
    run = Run(settings)
    if supervisor.answers(run.paths):
        sys.exit(f"make run is already up (socket {run.paths.socket}); `make down` stops it.")
    child.die_with_parent(signal.SIGTERM)  # `make` killed: stop everything, as on Ctrl-C
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    code = 0
    try:
        run.prepare_servers()
        run.prepare_gateway()
        run.start_supervisord()
        run.start_all()
        print(
            "All services are up. From another terminal: make ps, make logs SERVICE=<name>, "
            "make stop|start|kill|pause|unpause SERVICE=<name>. Ctrl-C stops them all.\n"
            f"The breaker, live: http://127.0.0.1:{settings.resource_port}/dashboard\n"
            "Management (/admin/...) needs Authorization: Bearer <token>, the ADMIN_TOKEN you set"
            f" or else the one in {run.settings.dir / 'admin-token'}.",
            flush=True,
        )
        run.watch()
        print("Stopped by make down.", flush=True)
    except KeyboardInterrupt:
        print("\nStopping...", flush=True)
    except RuntimeError as exc:  # StartFailed, or a package we may not install (not root)
        print(f"make run could not start the platform: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        run.shutdown()
        run.stop_epmd()
        run.paths.stack.unlink(missing_ok=True)
    print("Everything make run started has stopped.", flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
