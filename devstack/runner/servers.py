"""PostgreSQL and RabbitMQ of our own, for a machine where none answers at the configured address.

On this project's machines both already run; on a fresh Debian or Ubuntu machine nothing answers
at 127.0.0.1:5432 and :5672, and every command would stop at its first connection. Then `make
run` (as programs of its supervisord, so `make ps|stop|kill|pause` work on them by name), the
tests, `make demo`, `make chaos` and `make reset` (with `local` or `running`) start Debian's
own servers: installed when missing, the way podman and Chromium are; each from a data
directory of its own, on the configured loopback port, as the package's unprivileged user when
we are root (as ourselves otherwise); stopped with everything else. A server that answers is
used as it is, and nothing is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from devstack import REPO, apt
from devstack.testing.sandbox import LOCAL_POSTGRES, LOCAL_RABBITMQ, local_rabbitmqctl

NODE_NAME = "songplatform@localhost"  # our broker's Erlang node, never the machine's rabbit@
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # not /usr/sbin's: that one runs `su`
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@dataclass(frozen=True)
class Server:
    name: str  # "postgres" or "rabbitmq": the name `make ps|stop|...` know it by
    port: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # switch to this user first (we are root)
    stop_signal: str = "TERM"


def address(url: str) -> tuple[str, int]:
    """(host, port) of a server URL, with each scheme's default port."""
    parts = urlsplit(url)
    default = 5672 if parts.scheme.startswith("amqp") else 5432
    return parts.hostname or "127.0.0.1", parts.port or default


def answers(url: str, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections at the URL's address."""
    try:
        with socket.create_connection(address(url), timeout=timeout):
            return True
    except OSError:
        return False


def ours_to_start(url: str) -> bool:
    """Nothing answers, and the address is one we can serve: a loopback one."""
    host, _ = address(url)
    return host in ("127.0.0.1", "localhost", "::1") and not answers(url)


def _unprivileged(user: str) -> str | None:
    """The user to run a server as: the package's when we are root, else ourselves."""
    return user if os.geteuid() == 0 else None


def data_dir(base: Path, name: str, user: str | None) -> Path:
    """`base/name`, unless `user` cannot reach into `base` (a run folder under /root, a test's
    private temporary folder): then a folder of this run's own under /var/tmp, the same each
    time for the same `base`."""
    if user is None or _others_may_enter(base):
        return base / name
    digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp/song-platform") / digest / name


def _others_may_enter(path: Path) -> bool:
    """Every folder on the way to `path` (the ones that exist yet) lets other users through."""
    existing = [p for p in [path, *path.resolve().parents] if p.exists()]
    return all(p.stat().st_mode & 0o001 for p in existing)


def _owned_dir(path: Path, user: str | None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if user is not None:
        account = pwd.getpwnam(user)
        for found in [path, *path.rglob("*")]:
            os.chown(found, account.pw_uid, account.pw_gid, follow_symlinks=False)
    return path


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian keeps it off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=_version)
    return found[-1].parent if found else Path("/usr/lib/postgresql/bin")


def _version(path: Path) -> int:
    name = path.parent.parent.name
    return int(name) if name.isdigit() else 0


def postgres(url: str, base: Path) -> Server:
    """A PostgreSQL for the URL's port from `base/postgres`: trust auth on loopback, superuser
    `postgres`, no Unix socket."""
    _, port = address(url)
    settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "", "fsync": "off"}
    options = [f"--{key}={value}" for key, value in settings.items()]
    user = _unprivileged("postgres")
    data = data_dir(base, "postgres", user)
    command = [str(postgres_bin() / "postgres"), "-D", str(data), "-p", str(port)]
    # SIGINT is PostgreSQL's fast shutdown: SIGTERM would wait for every client to leave.
    return Server("postgres", port, [*command, *options], user=user, stop_signal="INT")


def rabbitmq(url: str, base: Path) -> Server:
    """A RabbitMQ for the URL's port from `base/rabbitmq`: node `songplatform@localhost`, its
    own epmd port and cookie, no plugin, none of the machine's /etc/rabbitmq files."""
    _, port = address(url)
    user = _unprivileged("rabbitmq")
    env = rabbitmq_env(data_dir(base, "rabbitmq", user), port)
    return Server("rabbitmq", port, [RABBITMQ_SERVER], env, user=user)


def prepare(server: Server, base: Path) -> None:
    """Install the server's package when missing, and make its data directory the first time."""
    if server.name == "postgres":
        if not (postgres_bin() / "postgres").exists():
            apt.install_servers(["postgresql"])
        data = data_dir(base, "postgres", server.user)
        if not (data / "PG_VERSION").exists():
            _owned_dir(data, server.user)
            initdb = [str(postgres_bin() / "initdb"), "-D", str(data), "-U", "postgres"]
            _run_as(server.user, [*initdb, "-A", "trust", "--no-sync"])
        return
    if not Path(RABBITMQ_SERVER).exists():
        apt.install_servers(["rabbitmq-server"])
    home = data_dir(base, "rabbitmq", server.user)
    (home / "log").mkdir(parents=True, exist_ok=True)
    (home / "enabled_plugins").write_text("[].\n")
    (home / "rabbitmq.conf").write_text("loopback_users.guest = true\n")
    (home / "rabbitmq-env.conf").write_text("")
    _owned_dir(home, server.user)


def rabbitmq_env(home: Path, port: int) -> dict[str, str]:
    """What our broker and a `rabbitmqctl` aimed at it need in their environment."""
    return {
        "HOME": str(home),  # the Erlang cookie lives here
        "RABBITMQ_NODENAME": NODE_NAME,
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(epmd_port(port) + 1),
        "ERL_EPMD_PORT": str(epmd_port(port)),  # an epmd of our own, killed with the broker
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_LOGS": "-",  # to stdout: the program's log
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
        "RUNNING_UNDER_SYSTEMD": "true",  # `exec erl` in the foreground: signals reach the VM
    }


def epmd_port(amqp_port: int) -> int:
    """Ports of our broker's own: a fixed offset below the AMQP port (5672 -> 4372, 4373)."""
    return amqp_port - 1300 if amqp_port > 2300 else amqp_port + 1300


def stop_epmd(server: Server) -> None:
    """The epmd our broker started stays after it: ask it to go (it serves nobody else)."""
    if server.name == "rabbitmq":
        env = {**os.environ, "ERL_EPMD_PORT": server.env["ERL_EPMD_PORT"]}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["epmd", "-kill"], env=env, capture_output=True, timeout=10)


def _run_as(user: str | None, command: list[str]) -> None:
    uid, gid, groups = _identity(user)
    subprocess.run(
        command, check=True, capture_output=True, user=uid, group=gid, extra_groups=groups
    )


def _identity(user: str | None) -> tuple[int | None, int | None, list[int] | None]:
    """Popen's user, group and extra groups that switch to `user` before the command runs."""
    if user is None:
        return None, None, None
    account = pwd.getpwnam(user)
    return account.pw_uid, account.pw_gid, []


def wanted(postgres_url: str, rabbitmq_url: str, base: Path) -> list[Server]:
    """The servers to start: those with nothing answering at their address."""
    servers = []
    if ours_to_start(postgres_url):
        servers.append(postgres(postgres_url, base))
    if ours_to_start(rabbitmq_url):
        servers.append(rabbitmq(rabbitmq_url, base))
    return servers


def ready(name: str, port: int) -> bool:
    """PostgreSQL answers a query (it accepts connections before it can serve one); anything
    else (RabbitMQ, which opens its AMQP port once booted; the gateway) listens."""
    if name != "postgres":
        return answers(f"amqp://127.0.0.1:{port}")
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            dbname="postgres",
            connect_timeout=1,
        ) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def running(postgres_url: str, rabbitmq_url: str, base: Path) -> Iterator[list[Server]]:
    """Start the servers none answers for (`make test`, `make demo`, `make chaos`), say so,
    and stop them at the end."""
    servers = wanted(postgres_url, rabbitmq_url, base)
    started: list[tuple[Server, subprocess.Popen[bytes]]] = []
    try:
        for server in servers:
            prepare(server, base)
            started.append((server, _spawn(server, base)))
            _wait_ready(server, started[-1][1])
            data = data_dir(base, server.name, server.user)
            print(f"started {server.name} on 127.0.0.1:{server.port} (data in {data})", flush=True)
        yield servers
    finally:
        for server, process in reversed(started):
            _stop(server, process)


def _spawn(server: Server, base: Path) -> subprocess.Popen[bytes]:
    uid, gid, groups = _identity(server.user)
    with (base / f"{server.name}.log").open("ab") as log:
        return subprocess.Popen(
            server.command,
            env={**os.environ, **server.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )


def _wait_ready(server: Server, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready(server.name, server.port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not start on 127.0.0.1:{server.port}")
        time.sleep(0.2)


def _stop(server: Server, process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.Signals[f"SIG{server.stop_signal}"])
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    stop_epmd(server)


def rabbitmqctl_of(server: Server) -> Callable[..., str]:
    """`rabbitmqctl -q ARGS` aimed at our broker (its node, epmd port and cookie); its output."""

    def rabbitmqctl(*args: str) -> str:
        env = {**os.environ, **server.env}
        command = [RABBITMQCTL, "-q", *args]
        return subprocess.run(
            command, env=env, check=True, capture_output=True, text=True, timeout=60
        ).stdout

    return rabbitmqctl


@contextlib.contextmanager
def local(base: Path = REPO / ".run") -> Iterator[Callable[..., str]]:
    """The machine's PostgreSQL and RabbitMQ at the default addresses, or ours started for the
    while when none answers; yields the `rabbitmqctl` of the broker in use."""
    with running(LOCAL_POSTGRES, LOCAL_RABBITMQ, base) as started:
        ours = rabbitmq(LOCAL_RABBITMQ, base)
        # Ours when this call started it, or when another process of this checkout did (a test
        # session running `make demo`): its node then runs from the same folder.
        broker_is_ours = any(s.name == "rabbitmq" for s in started) or _running(ours)
        yield rabbitmqctl_of(ours) if broker_is_ours else local_rabbitmqctl


def _running(server: Server) -> bool:
    """Our broker's node is up: its pid file names a live process."""
    pid_file = Path(server.env["RABBITMQ_PID_FILE"])
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True
