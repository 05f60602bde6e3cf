"""Static checks of the container setup: docker-compose.yml, the Dockerfiles, the LocalStack hook.

No Docker engine is needed (this machine has none): the files are parsed and compared with the code
they must agree with, so a renamed bucket or a changed port fails here, not at `docker compose up`.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack.containers.compose import CONTAINER_SECRETS, SECRETS
from devstack.containers.standins import STANDINS, StandIn
from resource_service.schemas import STORAGE_LIST
from service_kit.s3 import PLATFORM_TAG

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
BUCKETS_HOOK = ROOT / "localstack-init" / "ready.d" / "create_buckets.py"
POSTGRES_INIT = ROOT / "docker" / "postgres-init" / "01-databases.sh"
# The Compose Specification's JSON schema, vendored because tests have no network. Copied unchanged
# from the PyPI wheel docker-compose==1.29.2 (compose/config/compose_spec.json; sha256
# 0dc04bd346dcfee1b1419628fff79937bbf076925f298f272a2b490e2b112bac), the compose-spec schema as of
# that release (May 2021, JSON Schema draft 2019-09). Apache-2.0, like the specification.
SCHEMA = Path(__file__).with_name("compose-spec.json")

# Compose service name -> the package it runs. Hyphens, because hostnames may not hold underscores.
APP_SERVICES = {
    "storage-service": "storage_service",
    "song-service": "song_service",
    "resource-service": "resource_service",
    "resource-processor": "resource_processor",
}
# Infrastructure from upstream images; they depend on nothing.
INFRA_SERVICES = {"postgres", "rabbitmq", "localstack"}
# The front door and the second Resource Service replica behind it (docs/gateway.md).
EDGE_SERVICES = {"gateway", "resource-service-2"}


# --- helpers (reusable: the Resource Service's stub check wants the same bucket names) ---------


def localstack_hook_constant(name: str) -> Any:
    """A literal `NAME = ...` of the LocalStack ready hook.

    Parsed with `ast`: executing the hook would connect to S3.
    """
    tree = ast.parse(BUCKETS_HOOK.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ... in {BUCKETS_HOOK}")


def localstack_hook_buckets() -> set[str]:
    """The bucket names the LocalStack ready hook creates, read from its `BUCKETS = (...)`."""
    return set(localstack_hook_constant("BUCKETS"))


def setting_default(package: str, field: str) -> Any:
    """The default of a field of `<package>.config.Settings`, without reading the environment."""
    settings = importlib.import_module(f"{package}.config").Settings
    return settings.model_fields[field].default


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            pairs.append((keyword.upper(), args.strip()))
    return pairs


def with_defaults(entry: object) -> str:
    """A compose value with each `${VAR:-default}` read as its default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(entry))


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host port or None, container port) for each short-syntax `ports` entry, with each
    `${VAR:-default}` read as its default."""
    pairs = []
    for entry in service.get("ports", []):
        parts = with_defaults(entry).split(":")  # [ip:][host:]container
        pairs.append((parts[-2] if len(parts) > 1 else None, parts[-1]))
    return pairs


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


# --- the compose file ------------------------------------------------------------------------


def test_every_published_port_is_on_loopback_unless_a_variable_opens_it(
    services: dict[str, Any],
) -> None:
    entries = [(name, e) for name, s in services.items() for e in s.get("ports", [])]
    # the gateway, the services, the infrastructure, Prometheus, Grafana and Jaeger's UI
    assert len(entries) == 11
    for name, entry in entries:
        assert with_defaults(entry).split(":")[0] == "127.0.0.1", (name, entry)


def test_compose_file_validates_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # Named, not looked up from "$schema": the file spells the draft's URI in an old, unknown form.
    validator = jsonschema.Draft201909Validator(schema)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_compose_runs_exactly_the_platform(services: dict[str, Any]) -> None:
    """By default: the platform; with `--profile observability`, Prometheus, Grafana and Jaeger
    too."""
    default = {name for name, service in services.items() if "profiles" not in service}
    assert default == set(APP_SERVICES) | INFRA_SERVICES | EDGE_SERVICES
    observability = {n for n, s in services.items() if "observability" in s.get("profiles", [])}
    assert observability == {"prometheus", "grafana", "jaeger"}


def test_every_service_has_a_healthcheck_and_a_restart_policy(services: dict[str, Any]) -> None:
    for name, service in services.items():
        healthcheck = service.get("healthcheck", {})
        assert healthcheck.get("test") and not healthcheck.get("disable"), name
        assert service.get("restart") == "unless-stopped", name


def test_every_app_service_waits_for_its_dependencies_with_a_condition(
    services: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        depends_on = services[name].get("depends_on")
        # The long form: the short list form starts a service without waiting for anything.
        assert isinstance(depends_on, dict) and depends_on, name
        for dependency, rule in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert rule.get("condition") in {"service_healthy", "service_started"}, name
            if dependency in INFRA_SERVICES:
                assert rule["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_the_processor_runs_two_replicas_without_a_host_port(services: dict[str, Any]) -> None:
    processor = services["resource-processor"]
    assert processor["deploy"]["replicas"] == 2
    assert "ports" not in processor and "container_name" not in processor


def secrets_named(entry: object) -> set[str]:
    """The secrets a compose value interpolates (`${ADMIN_TOKEN:-}`, `...${RABBITMQ_PASSWORD}@`)."""
    return {name for name in re.findall(r"\$\{(\w+)", str(entry)) if name in SECRETS}


@pytest.mark.parametrize("name", sorted(CONTAINER_SECRETS))
def test_each_container_is_handed_only_its_own_secrets(services: dict[str, Any], name: str) -> None:
    """Issue "No one in, nothing starved", item 6: no shared env_file with every secret."""
    service = services[name]
    env_files = service.get("env_file", [])
    assert ".env" not in ([env_files] if isinstance(env_files, str) else env_files)
    assert secrets_named(service.get("environment", {})) <= CONTAINER_SECRETS[name]


def test_every_service_of_the_compose_file_has_its_secrets_stated(services: dict[str, Any]) -> None:
    assert set(services) == set(CONTAINER_SECRETS)


def test_the_shared_settings_file_holds_no_secret() -> None:
    names = {
        line.partition("=")[0].strip()
        for line in (ROOT / "services.env").read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }
    assert names and not names & set(SECRETS)
    assert not any(re.search("PASSWORD|TOKEN|SECRET", n) for n in names), names


def test_secrets_come_from_the_env_file(services: dict[str, Any]) -> None:
    # Required, not defaulted: compose refuses to start without them in .env.
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"].startswith(
        "${RABBITMQ_PASSWORD:?"
    )
    assert (ROOT / ".env.example").exists()
    assert ".env" in (ROOT / ".gitignore").read_text().split()


@pytest.mark.parametrize(("name", "package"), APP_SERVICES.items())
def test_compose_ports_equal_the_services_default_ports(
    services: dict[str, Any], name: str, package: str
) -> None:
    port = str(setting_default(package, "port"))
    service = services[name]
    if name == "resource-processor":
        assert [str(p) for p in service["expose"]] == [port]
    else:
        assert published_ports(service) == [(port, port)]
    assert service["build"]["args"]["PORT"] == port  # the image's PORT, EXPOSE and healthcheck


def test_only_the_worker_keeps_no_database(services: dict[str, Any]) -> None:
    with_database = {n for n in APP_SERVICES if "DATABASE_URL" in services[n]["environment"]}
    assert with_database == set(APP_SERVICES) - {"resource-processor"}


@pytest.mark.parametrize(
    ("name", "package"), [(n, p) for n, p in APP_SERVICES.items() if n != "resource-processor"]
)
def test_each_database_is_created_by_the_postgres_init_script_for_its_own_role(
    services: dict[str, Any], name: str, package: str
) -> None:
    url = services[name]["environment"]["DATABASE_URL"]
    parts = re.fullmatch(r"postgresql\+psycopg://(\w+):\$\{\w+\}@postgres:5432/(\w+)", url)
    loop = re.search(r"for service in ([\w ]+); do", POSTGRES_INIT.read_text())
    assert parts and loop, (url, POSTGRES_INIT)
    role, database = parts.groups()
    looped = loop.group(1).split()
    assert (role, database) in {(f"{s}_service", f"{s}_db") for s in looped}
    assert setting_default(package, "database_url").rsplit("/", 1)[-1] == database
    script = POSTGRES_INIT.read_text()
    assert 'CREATE DATABASE :"database" OWNER :"role";' in script
    assert 'REVOKE ALL ON DATABASE :"database" FROM PUBLIC;' in script


@pytest.mark.parametrize("name", list(APP_SERVICES))
def test_our_services_run_read_only_without_capabilities(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert any(str(t).startswith("/tmp") for t in service["tmpfs"])


def test_every_container_drops_capabilities_and_every_image_is_pinned(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        if "image" in service:
            tag = service["image"].rsplit(":", 1)[-1]
            assert re.match(r"v?\d+\.\d+", tag), (
                name,
                service["image"],
            )  # a minor version at least


# --- the Dockerfiles -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "package"), APP_SERVICES.items())
def test_each_app_service_is_built_from_the_one_dockerfile_for_its_package(
    services: dict[str, Any], name: str, package: str
) -> None:
    build = services[name]["build"]
    assert build["context"] == "."  # pyproject.toml and service_kit/ live at the root
    assert "dockerfile" not in build  # the root Dockerfile
    assert build["args"]["PACKAGE"] == package


def test_the_dockerfile_runs_python_m_package_as_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    healthchecks = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert healthchecks and healthchecks[-1].upper() != "NONE"
    assert ("COPY", "${PACKAGE}/ ${PACKAGE}/") in instructions
    assert ("EXPOSE", "${PORT}") in instructions
    env = " ".join(args for keyword, args in instructions if keyword == "ENV").split()
    assert {"PORT=${PORT}", "SERVICE_PACKAGE=${PACKAGE}"} <= set(env)
    entrypoint = [args for keyword, args in instructions if keyword == "ENTRYPOINT"][-1]
    # `exec` replaces the shell, so python is PID 1 and the signals reach it.
    assert json.loads(entrypoint) == ["/bin/sh", "-c", 'exec python -m "$SERVICE_PACKAGE"']


# --- names shared between the hook and the code ----------------------------------------------


def test_localstack_hook_creates_the_storage_service_seed_buckets() -> None:
    seeds = {
        setting_default("storage_service", "seed_staging_bucket"),
        setting_default("storage_service", "seed_permanent_bucket"),
    }
    assert localstack_hook_buckets() == seeds


def test_localstack_hook_marks_its_buckets_as_the_platform_does() -> None:
    assert localstack_hook_constant("PLATFORM_TAG") == PLATFORM_TAG


def test_the_resource_service_stub_repeats_the_seed_rows() -> None:
    stub = STORAGE_LIST.validate_json(setting_default("resource_service", "storage_stub_json"))
    seeds = {
        ("STAGING", "seed_staging_bucket", "seed_staging_path"),
        ("PERMANENT", "seed_permanent_bucket", "seed_permanent_path"),
    }
    assert {(s.storage_type, s.bucket, s.path) for s in stub} == {
        (kind, setting_default("storage_service", bucket), setting_default("storage_service", path))
        for kind, bucket, path in seeds
    }
    assert {s.bucket for s in stub} == localstack_hook_buckets()


def test_localstack_mounts_the_hooks_where_localstack_looks(services: dict[str, Any]) -> None:
    assert "./localstack-init:/etc/localstack/init:ro" in services["localstack"]["volumes"]
    assert services["localstack"]["environment"]["SERVICES"] == "s3"


# --- the stand-in images ---------------------------------------------------------------------


@pytest.mark.parametrize("standin", STANDINS, ids=lambda s: s.recipe)
def test_a_standin_has_a_tag_of_its_own_and_an_override_that_names_it(
    services: dict[str, Any], standin: StandIn
) -> None:
    """Issue "A codebase the next engineer can carry": a stand-in tagged with the official name
    kept being used after a registry became reachable. The compose file names the official
    image; only the recipe's override, added where no registry answers, names the stand-in."""
    assert standin.tag.startswith("localhost/standin/")
    override = yaml.safe_load(standin.override.read_text())["services"]
    assert override and set(override) <= set(services)
    for name, changes in override.items():
        if standin.recipe == "python":  # our images build on it
            assert changes == {"build": {"args": {"BASE_IMAGE": standin.tag}}}
            assert services[name]["build"]["context"] == "."
        else:
            assert changes == {"image": standin.tag}
            assert services[name]["image"] == standin.name


def test_every_app_service_builds_on_the_python_standin_where_it_is_used(
    services: dict[str, Any],
) -> None:
    python = next(s for s in STANDINS if s.recipe == "python")
    built = {name for name, service in services.items() if "build" in service}
    assert set(yaml.safe_load(python.override.read_text())["services"]) == built
    assert f"ARG BASE_IMAGE={python.name}" in DOCKERFILE.read_text().splitlines()


def test_the_services_export_spans_to_jaeger_only_when_the_env_file_says_so(
    services: dict[str, Any],
) -> None:
    """Issue "Follow one upload", item 1: the `observability` profile adds Jaeger (its official
    image, OTLP/HTTP on the compose network) and the services export to it there. Unset, the
    endpoint is empty and service_kit.tracing exports nothing."""
    exporting = [*APP_SERVICES, *(EDGE_SERVICES - {"gateway"})]
    for name in exporting:
        endpoint = services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == "${OTEL_EXPORTER_OTLP_ENDPOINT:-}", name
    jaeger = services["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/jaeger:2.")
    assert "receivers.otlp.protocols.http.endpoint=0.0.0.0:4318" in jaeger["command"]
    assert jaeger["ports"] == ["127.0.0.1:${JAEGER_HOST_PORT:-16686}:16686"]
    example = (ROOT / ".env.example").read_text()
    assert "# OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318" in example
