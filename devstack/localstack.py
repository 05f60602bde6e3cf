"""LocalStack on the host, for machines without a Docker engine.

What runs here was measured (shared notes, s3-without-docker): localstack-core 4.13.1 is the
last release that runs on Python 3.11, in a virtual environment of its own because it pins its
own boto3, started as `python -m localstack.runtime.main` (the CLI wants an account).

    python -m devstack.localstack install | start | serve | stop | status

`start` runs it in the background for the tests; `serve` becomes it, for `make run`'s supervisor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from devstack import REPO

HOME = REPO / ".localstack"
VENV = HOME / "venv"
PYTHON = VENV / "bin" / "python"
# Kept between runs: the first start builds a catalog cache here (about 5 s).
FILESYSTEM_ROOT = HOME / "data"
PID_FILE = HOME / "localstack.pid"
LOG_FILE = HOME / "localstack.log"
# The same pins as the container stand-in's (docker/standins/localstack).
REQUIREMENTS = REPO / "docker" / "standins" / "localstack" / "requirements.txt"
DEFAULT_PORT = 4566


def endpoint(port: int = DEFAULT_PORT) -> str:
    return f"http://127.0.0.1:{port}"


def init_status(port: int = DEFAULT_PORT) -> dict[str, Any] | None:
    """LocalStack's own report of its init hooks, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{endpoint(port)}/_localstack/init", timeout=2) as reply:
            status: dict[str, Any] = json.load(reply)
            return status
    except (OSError, ValueError):
        return None


def hooks_done(status: dict[str, Any]) -> bool:
    ready = [s for s in status.get("scripts", []) if s.get("stage") == "READY"]
    return status.get("completed", {}).get("READY") is True and all(
        s.get("state") == "SUCCESSFUL" for s in ready
    )


def install() -> None:
    if PYTHON.exists() and (VENV / ".installed").exists():
        return
    HOME.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    (VENV / ".installed").touch()


def _link_init_hooks() -> None:
    # Hooks on the host live under FILESYSTEM_ROOT/etc/localstack/init, as in the container.
    init_dir = FILESYSTEM_ROOT / "etc" / "localstack" / "init"
    init_dir.parent.mkdir(parents=True, exist_ok=True)
    if not init_dir.is_symlink():
        if init_dir.exists():
            init_dir.rename(init_dir.with_suffix(".old"))
        init_dir.symlink_to(REPO / "localstack-init")


def environment(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "OVERRIDE_IN_DOCKER": "0",  # /.dockerenv would make it use container paths
        "FILESYSTEM_ROOT": str(FILESYSTEM_ROOT),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "SERVICES": "s3",
        "PERSISTENCE": "0",
        "EAGER_SERVICE_LOADING": "1",
        "DNS_ADDRESS": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "LOCALSTACK_TELEMETRY": "0",
        "DISABLE_EVENTS": "1",
    }


COMMAND = [str(PYTHON), "-m", "localstack.runtime.main"]


def serve(port: int = DEFAULT_PORT) -> None:
    """Become LocalStack in the foreground (exec: same pid), for a supervisor to run."""
    install()
    _link_init_hooks()
    os.execve(COMMAND[0], COMMAND, environment(port))


def start(port: int = DEFAULT_PORT, timeout: float = 90.0) -> subprocess.Popen[bytes] | None:
    """Start LocalStack unless something answers on the port; return once the hooks succeeded.

    Returns the process it started, or None when one was already running.
    """
    if init_status(port) is not None:
        wait_ready(port, timeout)
        return None
    install()
    _link_init_hooks()
    log = LOG_FILE.open("ab")
    process = subprocess.Popen(
        COMMAND,
        env=environment(port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C in the tests is handled by us, not sent to it directly
    )
    PID_FILE.write_text(str(process.pid))
    try:
        wait_ready(port, timeout, process)
    except BaseException:
        stop_process(process)
        raise
    return process


def wait_ready(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"LocalStack exited with {process.returncode}; see {LOG_FILE}")
        status = init_status(port)
        if status is not None and hooks_done(status):
            return
        if status is not None and any(s.get("state") == "ERROR" for s in status.get("scripts", [])):
            raise RuntimeError(f"a LocalStack init hook failed: {status}; see {LOG_FILE}")
        time.sleep(0.25)
    raise TimeoutError(f"LocalStack not ready on port {port} after {timeout:.0f} s; see {LOG_FILE}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    PID_FILE.unlink(missing_ok=True)


def stop() -> None:
    if not PID_FILE.exists():
        return
    pid = int(PID_FILE.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    PID_FILE.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.localstack")
    parser.add_argument("action", choices=["install", "start", "serve", "stop", "status"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args()
    if args.action == "install":
        install()
    elif args.action == "start":
        started = start(args.port)
        print("LocalStack started" if started else "LocalStack already running", flush=True)
    elif args.action == "serve":
        serve(args.port)
    elif args.action == "stop":
        stop()
    else:
        status = init_status(args.port)
        print(json.dumps(status, indent=2) if status else "not running")
        sys.exit(0 if status else 1)


if __name__ == "__main__":
    main()
