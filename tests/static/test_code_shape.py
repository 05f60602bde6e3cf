"""The shape a newcomer learns once: the same module for the same role in every service, no
import cycle, no service importing another, no tooling importing the tests, short functions."""

from __future__ import annotations

import ast
import importlib
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["storage_service", "song_service", "resource_service", "resource_processor"]
OURS = ["service_kit", *SERVICES, "devstack", "bench"]
MAX_FUNCTION_LINES = 50


def modules() -> dict[str, Path]:
    """Every module of ours by dotted name, migrations aside (Alembic's generated layout)."""
    found = {}
    for package in OURS:
        for path in (ROOT / package).rglob("*.py"):
            if "alembic" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    ours = modules()
    return {
        name: {i for i in imports_of(path) if i in ours} - {name} for name, path in ours.items()
    }


def test_no_import_cycle_anywhere_in_our_modules() -> None:
    graph = import_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for imported in sorted(graph[name]):
            # `import a.b` also runs `a`: a package importing its own module is no cycle.
            if not name.startswith(imported + "."):
                visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


@pytest.mark.parametrize("package", SERVICES)
def test_a_service_imports_no_other_service_and_nothing_imports_tests(package: str) -> None:
    for name, path in modules().items():
        if not name.startswith(package + "."):
            continue
        for imported in imports_of(path):
            top = imported.split(".")[0]
            assert top not in SERVICES or top == package, (name, imported)
            assert top != "tests", (name, imported)


def test_tooling_never_imports_the_tests() -> None:
    for name, path in modules().items():
        assert not any(i.split(".")[0] == "tests" for i in imports_of(path)), name


@pytest.mark.parametrize("package", SERVICES)
def test_every_service_has_the_same_modules_for_the_same_roles(package: str) -> None:
    present = {path.stem for path in (ROOT / package).glob("*.py")}
    # Every service: started with `python -m`, configured, composed in one root, its own errors.
    assert {"__main__", "app", "bootstrap", "config", "errors"} <= present
    source = "\n".join(p.read_text() for p in (ROOT / package).glob("*.py"))
    roles = {
        "repository": "sqlalchemy",  # a database: its models, queries and migrations
        "broker": "BrokerLink",  # RabbitMQ
        "clients": "httpx2.AsyncClient",  # outbound HTTP
    }
    for module, marker in roles.items():
        if marker in source:
            assert module in present, f"{package} uses {marker} but has no {module}.py"
    if "repository" in present:
        assert {"models", "schemas", "routes"} <= present
        assert (ROOT / package / "alembic").is_dir()


def test_no_function_over_50_lines_outside_tests() -> None:
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, long


def test_every_module_imports() -> None:
    """Type checkers read some imports only for typing: this runs them (not `__main__`s)."""
    for name in modules():
        if not name.endswith("__main__"):
            importlib.import_module(name)


def test_the_distribution_and_the_images_hold_the_services_and_service_kit_only() -> None:
    """The harness (devstack), the benchmarks and the tests are run from a checkout; none of
    them is installed with the services or copied into their images."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(p.removesuffix("*") for p in packages) == sorted(["service_kit", *SERVICES])
    allowed = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] == "!"
    ]
    assert sorted(allowed) == sorted(
        ["!pyproject.toml", "!uv.lock", *(f"!{p}/" for p in ["service_kit", *SERVICES])]
    )
