"""The real `make run`, started as a user starts it: `make run` in a process group of its own.

Its ports, databases, vhost and run folder are this test's own (`RUN_*`), so it never meets a
`make run` a person has up on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from pytest import TempPathFactory

from devstack.runner.services import DATABASES, Program, RunSettings, health, programs
from devstack.runner.supervisor import RunPaths, Supervisord
from devstack.testing.sandbox import Sandbox
from devstack.testing.stack import free_port, wait_until
from tests.fixture_types import VhostFactory
from tests.infra import Infrastructure

REPO = Path(__file__).resolve().parents[3]
SERVICES = ["storage-service", "song-service", "resource-service", "resource-processor"]


@dataclass
class MakeRun:
    process: subprocess.Popen[str]
    env: dict[str, str]
    settings: RunSettings
    terminal: list[str] = field(default_factory=list)

    @property
    def programs(self) -> dict[str, Program]:
        return {p.name: p for p in programs(self.settings)}

    def read_terminal(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.terminal.append(line.rstrip("\n"))

    def make(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`make ARGS` from a second terminal."""
        return subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def said(self, text: str, timeout: float = 10) -> str:
        """Wait until the run's terminal shows a line containing `text`; return that line."""

        def line() -> str | None:
            return next((ln for ln in self.terminal if text in ln), None)

        return wait_until(line, timeout, lambda: f"{text!r} in\n" + "\n".join(self.terminal))

    def pid(self, name: str) -> int:
        info = Supervisord(RunPaths(self.settings.dir)).info(name)
        assert info["statename"] in ("STARTING", "RUNNING"), info
        return int(info["pid"])

    def healthy(self, name: str) -> bool:
        return health(self.programs[name]).status in ("UP", "DEGRADED")

    def wait_healthy(self, name: str, timeout: float = 60) -> None:
        wait_until(lambda: self.healthy(name), timeout, f"{name} healthy")

    def started_pids(self) -> set[int]:
        """Every process this run started: make, the run command, supervisord and its children."""
        try:
            root = psutil.Process(self.process.pid)
            return {root.pid, *(p.pid for p in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()


def listening(port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
        for c in psutil.net_connections(kind="tcp")
    )


def all_gone(pids: set[int], ports: list[int]) -> bool:
    alive = [p for p in pids if psutil.pid_exists(p) and not _zombie(p)]
    return not alive and not any(listening(port) for port in ports)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def start_make_run(
    infra: Infrastructure,
    sandbox: Sandbox,
    new_rabbitmq_vhost: VhostFactory,
    tmp_path_factory: TempPathFactory,
) -> Iterator[Callable[..., MakeRun]]:
    """Starts `make run` with this module's own ports, databases and vhost; stops it at the end."""
    started: list[MakeRun] = []

    def start(*make_args: str, s3_port: int | None = None, **env: str) -> MakeRun:
        prefix = f"test_run_{sandbox.token}_{len(started)}_"
        sandbox.databases.extend(f"{prefix}{name}_db" for name in DATABASES)
        sandbox.roles.extend(f"{prefix}{name}_service" for name in DATABASES)
        run_env = {
            "RUN_DIR": str(tmp_path_factory.mktemp("run")),
            "RUN_RESOURCE_PORT": str(free_port()),
            "RUN_SONG_PORT": str(free_port()),
            "RUN_STORAGE_PORT": str(free_port()),
            "RUN_PROCESSOR_PORT": str(free_port()),
            "RUN_GATEWAY_PORT": str(free_port()),
            "RUN_RESOURCE_REPLICA_PORT": str(free_port()),
            # The test session's LocalStack, served from outside this run, unless a test asks
            # for a port of its own (then the run starts LocalStack itself).
            "RUN_S3_PORT": str(s3_port or int(infra.s3_endpoint_url.rsplit(":", 1)[1])),
            "RUN_POSTGRES_URL": infra.postgres_url,
            "RUN_DATABASE_PREFIX": prefix,
            "RUN_RABBITMQ_URL": new_rabbitmq_vhost("run").url,
            **env,
        }
        full_env = {**os.environ, **run_env}
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", *make_args],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        run = MakeRun(process, full_env, RunSettings.model_validate(_settings_of(run_env)))
        started.append(run)
        threading.Thread(target=run.read_terminal, daemon=True).start()
        run.said("All services are up", timeout=180)
        return run

    yield start
    for run in started:
        stop(run)


def stop(run: MakeRun) -> None:
    """Ctrl-C, as a person stops it; SIGKILL of the group if that did not work."""
    if run.process.poll() is not None:
        return
    os.killpg(run.process.pid, signal.SIGINT)
    try:
        run.process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()


def _settings_of(env: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix("RUN_").lower(): v for k, v in env.items() if k.startswith("RUN_")}
