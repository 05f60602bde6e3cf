"""The container engine: Docker where one answers, otherwise podman, installed when missing.

podman runs with the project's own containers.conf (CONTAINERS_CONF; nothing under /etc changes)
and `podman-compose` (PyPI, in the project's venv) reads the same docker-compose.yml.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devstack import REPO
from devstack.apt import ensure_commands

CONTAINERS_CONF = REPO / "docker" / "podman" / "containers.conf"
# Where this machine's pip finds its certificates and settings: builds need them too.
HOST_PIP_FILES = ("/etc/ssl/certs", "/etc/xdg/pip")


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    compose_command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    build_flags: tuple[str, ...] = ()
    # For builds that install from PyPI: this machine's certificates and pip settings. Only
    # those: mounted read-only, they break a Debian package that writes /etc/ssl (ssl-cert).
    pip_flags: tuple[str, ...] = ()

    def _command(self, *args: str, **options: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run([self.name, *args], env={**os.environ, **self.env}, **options)

    def run(
        self, *args: str, stdin: IO[bytes] | None = None, quiet: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        output = subprocess.DEVNULL if quiet else None
        return self._command(*args, stdin=stdin, stdout=output, check=check, text=True)

    def output(self, *args: str) -> str:
        return str(self._command(*args, capture_output=True, check=True, text=True).stdout)

    def image_exists(self, image: str) -> bool:
        how = "exists" if self.name == "podman" else "inspect"
        return self._command("image", how, image, capture_output=True).returncode == 0

    def pull(self, image: str) -> bool:
        return self._command("pull", "-q", image, capture_output=True, timeout=600).returncode == 0

    def build(self, tag: str, context: Path, pip: bool = False) -> None:
        flags = (*self.build_flags, *(self.pip_flags if pip else ()))
        built = self._command(
            "build", *flags, "-t", tag, str(context), capture_output=True, text=True
        )
        if built.returncode != 0:
            raise SystemExit(
                f"building {tag} failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}"
            )

    def compose(self, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return subprocess.run(
            [*self.compose_command, *args],
            env={**os.environ, **self.env, **(env or {})},
            cwd=REPO,
            **kwargs,
        )


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False  # the client alone is no engine: only `docker info` answering is
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


def podman() -> Engine:
    ensure_commands({"podman": "podman", "runc": "runc"})
    mounts = [f"--volume={path}:{path}:ro" for path in HOST_PIP_FILES if Path(path).exists()]
    return Engine(
        "podman",
        compose_command=(sys.executable, "-m", "podman_compose"),
        env={"CONTAINERS_CONF": str(CONTAINERS_CONF)},
        # The host network for downloads during builds only; `docker` format keeps HEALTHCHECK.
        build_flags=("--network=host", "--format=docker"),
        pip_flags=tuple(mounts),
    )


def detect() -> Engine:
    if docker_answers():
        return Engine("docker", compose_command=("docker", "compose"))
    return podman()
