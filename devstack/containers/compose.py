"""`make compose-up` / `make compose-down`: docker-compose.yml, detached, waited on until healthy.

    python -m devstack.containers.compose up [--timeout S]  # build, start, wait, say where
    python -m devstack.containers.compose down [--volumes]  # stop, remove (volumes too)

Docker compose where a Docker engine answers; podman-compose otherwise (`engine`), with stand-in
images where no registry answers (`standins`). Compose's own variables choose the project:
COMPOSE_PROJECT_NAME (default `song-platform`, docker-compose.yml's `name:`) and
COMPOSE_ENV_FILES (one file, default `.env`), so a second stack (the tests' walkthrough) has
containers, volumes and secrets of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiormq
import psycopg

from devstack import REPO
from devstack.containers import standins
from devstack.containers.engine import Engine, detect

PROJECT = "song-platform"  # docker-compose.yml's `name:`
ENV_FILE = REPO / ".env"
ENV_EXAMPLE = REPO / ".env.example"
SECRETS = (
    "POSTGRES_PASSWORD",
    "STORAGE_DB_PASSWORD",
    "SONG_DB_PASSWORD",
    "RESOURCE_DB_PASSWORD",
    "RABBITMQ_PASSWORD",
    "ADMIN_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
)
# The secrets each container may hold (docker-compose.yml passes exactly these; the tests read
# the file and the running containers' environments against it). PostgreSQL's init script
# creates each service's role, so it holds their passwords.
CONTAINER_SECRETS = {
    "postgres": {
        "POSTGRES_PASSWORD",
        "STORAGE_DB_PASSWORD",
        "SONG_DB_PASSWORD",
        "RESOURCE_DB_PASSWORD",
    },
    "rabbitmq": {"RABBITMQ_PASSWORD"},
    "localstack": set(),
    "storage-service": {"STORAGE_DB_PASSWORD", "ADMIN_TOKEN"},
    "song-service": {"SONG_DB_PASSWORD"},
    "resource-service": {"RESOURCE_DB_PASSWORD", "RABBITMQ_PASSWORD", "ADMIN_TOKEN"},
    "resource-service-2": {"RESOURCE_DB_PASSWORD", "RABBITMQ_PASSWORD", "ADMIN_TOKEN"},
    "gateway": set(),
    "resource-processor": {"RABBITMQ_PASSWORD"},
    "prometheus": set(),
    "grafana": {"GRAFANA_ADMIN_PASSWORD"},
    "jaeger": set(),
}
# The host ports compose publishes (on 127.0.0.1), by the variable that moves each.
APP_PORTS = {
    "GATEWAY_HOST_PORT": 8000,
    "RESOURCE_HOST_PORT": 8080,
    "SONG_HOST_PORT": 8081,
    "STORAGE_HOST_PORT": 8082,
}
INFRA_PORTS = {
    "POSTGRES_HOST_PORT": 5432,
    "RABBITMQ_HOST_PORT": 5672,
    "RABBITMQ_UI_HOST_PORT": 15672,
    "LOCALSTACK_HOST_PORT": 4566,
}
SERVICE_OF_PORT = {
    "GATEWAY_HOST_PORT": "gateway (the public API)",
    "RESOURCE_HOST_PORT": "resource-service",
    "SONG_HOST_PORT": "song-service",
    "STORAGE_HOST_PORT": "storage-service",
    "POSTGRES_HOST_PORT": "postgres",
    "RABBITMQ_HOST_PORT": "rabbitmq",
    "RABBITMQ_UI_HOST_PORT": "rabbitmq (management UI)",
    "LOCALSTACK_HOST_PORT": "localstack",
}


@dataclass(frozen=True)
class Project:
    """One compose stack: its name (containers, network and volumes carry it) and its secrets."""

    name: str = PROJECT
    env_file: Path = ENV_FILE

    @classmethod
    def from_environment(cls) -> Project:
        return cls(
            os.environ.get("COMPOSE_PROJECT_NAME", PROJECT),
            Path(os.environ.get("COMPOSE_ENV_FILES", ENV_FILE)),
        )

    @property
    def flags(self) -> tuple[str, ...]:
        return ("-p", self.name, "--env-file", str(self.env_file))

    def container_name(self, service: str, number: int = 1) -> re.Pattern[str]:
        # podman-compose names it <project>_<service>_<n>, docker compose <project>-<service>-<n>.
        return re.compile(rf"^{re.escape(self.name)}[-_]{re.escape(service)}[-_]{number}$")


def ensure_env_file(env_file: Path = ENV_FILE) -> None:
    """A first `compose-up` writes .env from .env.example with fresh random secrets: the
    example ships none, and compose refuses to start without them. An older .env gets the
    secrets it lacks, and keeps everything else."""
    if not env_file.exists():
        env_file.write_text(ENV_EXAMPLE.read_text())
        env_file.chmod(0o600)
        print(f"wrote {env_file.name} from {ENV_EXAMPLE.name}")
    values = env_file_values(env_file)
    missing = [name for name in SECRETS if not values.get(name)]
    lines = [ln for ln in env_file.read_text().splitlines() if ln.partition("=")[0] not in missing]
    lines += [f"{name}={secrets.token_urlsafe(24)}" for name in missing]
    if missing:
        env_file.write_text("\n".join(lines) + "\n")
        print(f"{env_file.name}: new random {', '.join(missing)}")


def env_file_values(env_file: Path = ENV_FILE) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def port_is_free(port: int) -> bool:
    """True unless something listens on the port. SO_REUSEADDR, as every server sets it: the
    TIME_WAIT entries of connections closed a minute ago must not make a free port "in use"
    (the container engine would bind it fine)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def a_free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def host_ports(configured: dict[str, str]) -> dict[str, int]:
    """The app ports as configured (a clash is an error: another stack runs); an infrastructure
    port the host already uses (its own PostgreSQL, say) moves to a free one."""
    ports = {}
    for name, default in {**APP_PORTS, **INFRA_PORTS}.items():
        port = int(configured.get(name, default))
        if not port_is_free(port):
            if name in APP_PORTS or name in configured:
                raise SystemExit(
                    f"port {port} ({SERVICE_OF_PORT[name]}) is in use: stop what listens there"
                    f" (make down, for make run) or set {name}"
                )
            port = a_free_port()
        ports[name] = port
    return ports


def containers(engine: Engine, project: Project) -> list[str]:
    listed = engine.output(
        "ps", "-a", "--filter", f"label=com.docker.compose.project={project.name}", "--format",
        "{{.Names}}",
    )  # fmt: skip
    return sorted(listed.split())


def healthy(engine: Engine, container: str) -> bool:
    if engine.name == "podman":
        # podman 4.3 runs healthchecks from systemd timers, and no systemd runs here: run it.
        return engine.run("healthcheck", "run", container, quiet=True, check=False).returncode == 0
    status = engine.output("inspect", "--format", "{{.State.Health.Status}}", container)
    return status.strip() == "healthy"


def wait_healthy(
    engine: Engine, project: Project, timeout: float, services: tuple[str, ...] = ()
) -> None:
    """Every container of the project healthy, or only those of `services`."""
    deadline = time.monotonic() + timeout
    waiting = containers(engine, project)
    if services:
        names = [project.container_name(s) for s in services]
        waiting = [c for c in waiting if any(name.match(c) for name in names)]
    while waiting:
        waiting = [c for c in waiting if not healthy(engine, c)]
        if waiting and time.monotonic() > deadline:
            raise SystemExit(f"not healthy after {timeout:.0f} s: {', '.join(waiting)}")
        time.sleep(2)


def check_volume_secrets(ports: dict[str, int], values: dict[str, str], timeout: float) -> None:
    """PostgreSQL and RabbitMQ keep the passwords their volumes were initialised with; a newer
    .env does not change them, and every service would then fail to log in until the wait
    times out. Logging in as the services do, over the published ports, says so at once."""
    logins = {
        "postgres (POSTGRES_PASSWORD)": _postgres_accepts,
        "rabbitmq (RABBITMQ_PASSWORD)": _rabbitmq_accepts,
    }
    refused = [
        name
        for name, login in logins.items()
        if _first_answer(login, ports, values, timeout) is False
    ]
    if refused:
        raise SystemExit(
            f"the volumes of {', '.join(refused)} were initialised with other secrets than"
            " the env file holds: restore the .env they were made with, or remove them and"
            " their data with `make compose-down VOLUMES=1`"
        )


Login = Callable[[dict[str, int], dict[str, str]], "bool | None"]


def _first_answer(
    login: Login, ports: dict[str, int], values: dict[str, str], timeout: float
) -> bool | None:
    """The server's answer to the login; None if it did not listen in time (healthy comes
    before the port is published or the listener is up: the wait that follows reports it)."""
    deadline = time.monotonic() + timeout
    while (answer := login(ports, values)) is None and time.monotonic() < deadline:
        time.sleep(1)
    return answer


def _postgres_accepts(ports: dict[str, int], values: dict[str, str]) -> bool | None:
    try:
        psycopg.connect(
            host="127.0.0.1",
            port=ports["POSTGRES_HOST_PORT"],
            user=values.get("POSTGRES_USER") or "postgres",
            password=values["POSTGRES_PASSWORD"],
            dbname="postgres",
            connect_timeout=10,
        ).close()
    except psycopg.OperationalError as error:
        return False if "password authentication failed" in str(error) else None
    return True


def _rabbitmq_accepts(ports: dict[str, int], values: dict[str, str]) -> bool | None:
    user = values.get("RABBITMQ_USER") or "platform"
    port = ports["RABBITMQ_HOST_PORT"]
    # The `platform` vhost, docker/rabbitmq/20-least-privilege.conf's default_vhost.
    url = f"amqp://{user}:{values['RABBITMQ_PASSWORD']}@127.0.0.1:{port}/platform"

    async def login() -> bool | None:
        try:
            connection = await aiormq.connect(url)
        except (aiormq.exceptions.ProbableAuthenticationError, aiormq.AuthenticationError):
            return False  # 403 ACCESS_REFUSED: the password
        except aiormq.exceptions.ConnectionClosed:
            return True  # logged in; what refused it afterwards is not the password
        except aiormq.exceptions.AMQPConnectionError:
            return None  # not listening yet
        await connection.close()
        return True

    return asyncio.run(login())


def up(timeout: float) -> int:
    engine = detect()
    project = Project.from_environment()
    ensure_env_file(project.env_file)
    values = env_file_values(project.env_file)
    ports = host_ports({**values, **_environment()})
    env = {name: str(port) for name, port in ports.items()}
    files = ["-f", "docker-compose.yml"]
    if engine.name == "podman":
        for standin in standins.ensure_images(engine):
            files += ["-f", str(standin.override)]
        flags = (*engine.build_flags, *engine.pip_flags)  # our Dockerfile installs from PyPI
        build = ["--podman-build-args=" + shlex.join(flags), "build"]
    else:
        build = ["build"]
    started = time.monotonic()
    engine.compose(*project.flags, *files, *build, env=env, check=True)
    started_up = engine.compose(
        *project.flags, *files, "up", "-d", env=env, stderr=subprocess.PIPE, text=True
    )
    print(_without_systemd_noise(started_up.stderr), end="", file=sys.stderr)
    if started_up.returncode != 0:
        raise SystemExit(f"compose up failed ({started_up.returncode})")
    wait_healthy(engine, project, timeout, services=("postgres", "rabbitmq"))
    check_volume_secrets(ports, values, timeout)
    wait_healthy(engine, project, timeout)
    print(f"the compose stack is healthy ({time.monotonic() - started:.0f} s, {engine.name}):")
    for name, port in ports.items():
        print(f"  {SERVICE_OF_PORT[name]:<26} 127.0.0.1:{port}")
    return 0


def down(volumes: bool) -> int:
    engine = detect()
    project = Project.from_environment()
    if not project.env_file.exists():
        ensure_env_file(project.env_file)  # compose reads it even to stop
    engine.compose(*project.flags, "down", *(["--volumes"] if volumes else []), check=True)
    left = containers(engine, project)
    if left:
        raise SystemExit(f"still there after down: {', '.join(left)}")
    print("the compose stack is down" + (", volumes removed" if volumes else ""))
    return 0


def _without_systemd_noise(output: str) -> str:
    """podman 4.3 reports, for every container, that it cannot hand its healthcheck to systemd
    (none runs here); `wait_healthy` runs the checks itself, so those lines are dropped."""
    lines = output.splitlines(keepends=True)
    return "".join(line for line in lines if "unable to get systemd connection" not in line)


def _environment() -> dict[str, str]:
    return {name: os.environ[name] for name in {**APP_PORTS, **INFRA_PORTS} if name in os.environ}


def main(argv: list[str] | None = None) -> int:
    prog = "python -m devstack.containers.compose"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up")
    up_parser.add_argument("--timeout", type=float, default=300)
    down_parser = commands.add_parser("down")
    down_parser.add_argument("--volumes", action="store_true")
    args = parser.parse_args(argv)
    return up(args.timeout) if args.command == "up" else down(args.volumes)


if __name__ == "__main__":
    sys.exit(main())
