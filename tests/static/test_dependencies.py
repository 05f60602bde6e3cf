"""The lock file is what every install uses (issue "A codebase the next engineer can carry",
item 4): every package it holds has a version and hashes, and the three installs read it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())


def test_every_locked_package_has_a_version_and_hashes() -> None:
    unhashed = []
    for package in LOCK["package"]:
        if package["name"] == "song-platform":  # the project itself, from this folder
            continue
        files = [package.get("sdist", {}), *package.get("wheels", [])]
        if not package.get("version") or not all(f.get("hash") for f in files if f):
            unhashed.append(package["name"])
    assert unhashed == []


def test_the_locked_direct_dependencies_are_pyprojects_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    locked = {p["name"]: p["version"] for p in LOCK["package"]}
    for pin in pins:
        name, _, version = pin.partition("==")
        name = name.split("[")[0].strip().lower().replace("_", "-")
        assert locked.get(name) == version.strip(), pin


def test_make_install_ci_and_the_dockerfile_install_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "sync --locked --extra dev" in makefile  # `make install`, which CI's `make test` runs
    assert "uv sync --locked --no-install-project" in dockerfile
    assert "!uv.lock" in (ROOT / ".dockerignore").read_text().splitlines()
