"""Stand-in images, for podman on a machine where no image registry answers.

The compose file names official images (python, postgres, rabbitmq, localstack, nginx). Where
one can be neither found locally nor pulled, a stand-in is built from Debian's packages and PyPI
under a tag of its own, `localhost/standin/<official name>`, and `make compose-up` adds the
recipe's compose override (docker/standins/<recipe>/compose.yml), which names that tag. So an
official image always wins where a registry answers, and a stand-in never passes for one. A
stand-in is a test device: it honours the environment variables, ports, health commands and init
folders that the official image documents and this project uses, no more
(docker/standins/*/Containerfile say what each one is).

    python -m devstack.containers.standins      # build what is missing
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack import REPO
from devstack.apt import ensure_commands
from devstack.containers.engine import Engine, podman

RECIPES = REPO / "docker" / "standins"
# Debian bookworm made with debootstrap: the root of every stand-in.
BASE_IMAGE = "localhost/standin-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The recipes that install from PyPI (the others take Debian's packages only).
PIP_RECIPES = {"localstack"}
# Every Containerfile labels its image so; an image with it is no official image.
DESCRIPTION = "org.opencontainers.image.description"


@dataclass(frozen=True)
class StandIn:
    official: str  # as a registry serves it
    recipe: str  # its folder under docker/standins

    @property
    def name(self) -> str:
        """The official image as the compose file and the tests name it."""
        return self.official.removeprefix("docker.io/").removeprefix("library/")

    @property
    def tag(self) -> str:
        return f"localhost/standin/{self.official.rsplit('/', 1)[-1]}"

    @property
    def override(self) -> Path:
        return RECIPES / self.recipe / "compose.yml"


STANDINS = [
    StandIn("docker.io/library/python:3.11.11-slim-bookworm", "python"),
    StandIn("docker.io/library/postgres:16.6-alpine", "postgres"),
    StandIn("docker.io/library/rabbitmq:4.4.1-management", "rabbitmq"),
    StandIn("docker.io/localstack/localstack:4.13.1", "localstack"),
    StandIn("docker.io/library/nginx:1.28.0-alpine", "nginx"),
]


def ensure_images(engine: Engine) -> list[StandIn]:
    """Every image of STANDINS present: the official one, found or pulled; else its stand-in,
    built when missing. The stand-ins in use, whose compose overrides apply."""
    in_use = []
    for standin in STANDINS:
        _retag_if_standin(engine, standin)
        if engine.image_exists(standin.official) or engine.pull(standin.official):
            continue
        if not engine.image_exists(standin.tag):
            ensure_base(engine)
            print(f"{standin.official}: no registry answers; building {standin.tag}")
            engine.build(standin.tag, RECIPES / standin.recipe, pip=standin.recipe in PIP_RECIPES)
        in_use.append(standin)
    return in_use


def _retag_if_standin(engine: Engine, standin: StandIn) -> None:
    """Stand-ins were once tagged with the official names: such an image moves to its own tag,
    so that it no longer passes for the official image."""
    if not engine.image_exists(standin.official):
        return
    labels = json.loads(
        engine.output("image", "inspect", "--format", "{{json .Labels}}", standin.official)
    )
    if (labels or {}).get(DESCRIPTION, "").startswith("stand-in for"):
        engine.run("tag", standin.official, standin.tag, quiet=True)
        engine.run("untag", standin.official, standin.official, quiet=True)
        print(f"{standin.official}: was a stand-in; it is {standin.tag} now")


def ensure_base(engine: Engine) -> None:
    if engine.image_exists(BASE_IMAGE):
        return
    ensure_commands({"debootstrap": "debootstrap"})
    print(f"{BASE_IMAGE}: debootstrap of Debian bookworm (about a minute)")
    with tempfile.TemporaryDirectory(prefix="standin-rootfs-") as rootfs:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                rootfs,
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        engine.run("import", "-", BASE_IMAGE, stdin=tar.stdout, quiet=True)
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap folder failed")


def main() -> int:
    ensure_images(podman())
    return 0


if __name__ == "__main__":
    sys.exit(main())
