"""Debian packages a command needs, installed when missing (the machine's own apt, as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def ensure_commands(packages_by_command: dict[str, str]) -> None:
    """Install the package of each command that is not on PATH; a failed install is retried
    once after `apt-get update` (a fresh machine may have no package lists yet)."""
    missing = sorted({p for c, p in packages_by_command.items() if shutil.which(c) is None})
    if missing:
        install_packages(missing)


def install_packages(packages: list[str]) -> None:
    """`apt-get install` them, retried once after `apt-get update`."""
    print(f"installing Debian's {', '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def install_servers(packages: list[str]) -> None:
    """Debian's server packages, with their services kept from starting (policy-rc.d says no,
    as in Debian's container images): the servers we start are ours, on our ports."""
    if os.geteuid() != 0:
        raise RuntimeError(f"install {' '.join(packages)} (sudo apt-get install) and try again")
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install_packages(packages)
    finally:
        if placed:
            policy.unlink(missing_ok=True)
