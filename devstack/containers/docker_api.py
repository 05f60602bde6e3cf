"""Run a command with a Docker-compatible API at DOCKER_HOST: Docker's own where an engine
answers, else podman's (`podman system service`), started for the command and stopped after.

    python -m devstack.containers.docker_api COMMAND [ARGS...]

`make test` runs the Storage and Song integration tests through it, so the suite's
testcontainers branch (tests/infra.py) runs against real containers, not only the local services.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from devstack import REPO
from devstack.containers import standins
from devstack.containers.engine import docker_answers, podman

SOCKET = REPO / ".run" / "podman-api.sock"


def answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


@contextlib.contextmanager
def podman_api() -> Iterator[dict[str, str]]:
    engine = podman()
    in_use = standins.ensure_images(engine)  # the official images, or their stand-ins
    SOCKET.parent.mkdir(exist_ok=True)
    SOCKET.unlink(missing_ok=True)
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{SOCKET}"],
        env={**os.environ, **engine.env},
    )
    try:
        deadline = time.monotonic() + 30
        while not answers(str(SOCKET)):
            if service.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("podman's API service did not start")
            time.sleep(0.2)
        # Ryuk, testcontainers' reaper, is an image no registry here serves; each test's
        # context manager removes its own containers.
        # This machine is itself a container (/.dockerenv), so testcontainers would look for a
        # gateway to reach the containers; podman publishes their ports on this host's loopback.
        yield {
            **engine.env,
            "DOCKER_HOST": f"unix://{SOCKET}",
            "TESTCONTAINERS_RYUK_DISABLED": "true",
            "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
            "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
            "TESTS_REQUIRE_CONTAINERS": "1",
            # tests/infra.py runs these in place of the official images.
            "STANDIN_IMAGES": ",".join(f"{s.name}={s.tag}" for s in in_use),
        }
    finally:
        service.terminate()
        service.wait(30)
        SOCKET.unlink(missing_ok=True)


def main(command: list[str]) -> int:
    if not command:
        raise SystemExit(__doc__)
    if docker_answers():
        return subprocess.run(
            command, env={**os.environ, "TESTS_REQUIRE_CONTAINERS": "1"}
        ).returncode
    with podman_api() as env:
        return subprocess.run(command, env={**os.environ, **env}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
