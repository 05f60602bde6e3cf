"""Stand-in images, for podman on a machine where no image registry answers.

The compose file names official images (python, postgres, rabbitmq, localstack, nginx). Where
one can be neither found locally nor pulled, a stand-in is built from Debian's packages and PyPI
and tagged with the official name, so the compose file and the Dockerfile build unchanged. A
stand-in is a test device: it honours the environment variables, ports, health commands and init
folders that the official image documents and this project uses, no more
(docker/standins/*/Containerfile say what each one is). With a registry or a Docker engine, the
official images are used.

    python -m devstack.standins      # build what is missing
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.apt import ensure_commands
from devstack.engine import Engine, podman

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "docker" / "standins"
# Debian bookworm made with debootstrap: the root of every stand-in.
BASE_IMAGE = "localhost/standin-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,python3-pip,ca-certificates"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# The recipes that install from PyPI (the others take Debian's packages only).
PIP_RECIPES = {"localstack"}
# The image the compose file (or the test suite) names -> the folder of its stand-in recipe.
STANDINS = {
    "docker.io/library/python:3.11.11-slim-bookworm": "python",
    "docker.io/library/postgres:16.6-alpine": "postgres",
    "docker.io/library/rabbitmq:4.4.1-management": "rabbitmq",
    "docker.io/localstack/localstack:4.13.1": "localstack",
    "docker.io/library/nginx:1.28.0-alpine": "nginx",
}


def ensure_images(engine: Engine) -> None:
    """Every image of STANDINS present: found, else pulled, else its stand-in built."""
    for image, recipe in STANDINS.items():
        if engine.image_exists(image) or engine.pull(image):
            continue
        ensure_base(engine)
        print(f"{image}: no registry answers; building its stand-in (docker/standins/{recipe})")
        engine.build(image, RECIPES / recipe, pip=recipe in PIP_RECIPES)


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
