"""The compose walkthrough (docs/compose.md), in real containers: `make compose-up`, an upload
reaches PERMANENT, our containers run as non-root, a paused Storage Service is covered by the
breaker, a killed processor is covered by its replica and brought back by the restart policy,
the gateway serves the public API only and goes on with one Resource Service replica killed,
and `make compose-down` leaves nothing (issue: the compose stack, run for real).

With a Docker engine it runs `docker compose`; here, podman (devstack.containers.engine). The
stack's project name, env file and host ports are this test's own, so it never meets a `make
run`, a user's compose stack or the volumes one left behind on this machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx2
import pytest

from devstack.containers.compose import (
    APP_PORTS,
    CONTAINER_SECRETS,
    INFRA_PORTS,
    SECRETS,
    Project,
    containers,
    env_file_values,
    port_is_free,
)
from devstack.containers.engine import Engine, detect
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # a fresh machine builds images


@dataclass
class ComposeStack:
    engine: Engine
    project: Project
    env: dict[str, str]
    http: httpx2.Client

    def url(self, port_variable: str) -> str:
        return f"http://127.0.0.1:{self.env[port_variable]}"

    def container(self, service: str, number: int = 1) -> str:
        name = self.project.container_name(service, number)
        found = [c for c in containers(self.engine, self.project) if name.match(c)]
        assert len(found) == 1, (service, containers(self.engine, self.project))
        return found[0]

    def secrets(self) -> dict[str, str]:
        return env_file_values(self.project.env_file)

    def upload(self, title: str, port: str = "RESOURCE_HOST_PORT") -> httpx2.Response:
        return self.http.post(
            f"{self.url(port)}/resources",
            content=make_mp3(1, title=title),
            headers={"Content-Type": "audio/mpeg"},
        )

    def breaker_state(self) -> str:
        health = self.http.get(f"{self.url('RESOURCE_HOST_PORT')}/health").json()
        return str(health["checks"]["storageBreaker"]["state"])

    def permanent_keys(self) -> set[str]:
        s3 = boto3.client(
            "s3",
            endpoint_url=self.url("LOCALSTACK_HOST_PORT"),
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        listed = s3.list_objects_v2(Bucket="resources-permanent")
        return {item["Key"] for item in listed.get("Contents", [])}


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    project = Project("song-platform-walkthrough", tmp_path_factory.mktemp("compose") / ".env")
    ports = {name: str(free_port()) for name in {**APP_PORTS, **INFRA_PORTS}}
    env = {
        **os.environ,
        **ports,
        "COMPOSE_PROJECT_NAME": project.name,
        "COMPOSE_ENV_FILES": str(project.env_file),
    }
    # A fresh machine builds the stand-ins and images (minutes); after that they are cached.
    up = make("compose-up", env, timeout=1500)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        with httpx2.Client(timeout=30) as http:
            yield ComposeStack(detect(), project, env, http)
    finally:
        down = make("compose-down", {**env, "VOLUMES": "1"}, timeout=300)
        assert down.returncode == 0, down.stdout + down.stderr


def test_compose_up_says_where_each_service_listens(compose_stack: ComposeStack) -> None:
    for service, variable in (("resource-service", "RESOURCE_HOST_PORT"),
                              ("song-service", "SONG_HOST_PORT"),
                              ("storage-service", "STORAGE_HOST_PORT")):  # fmt: skip
        reply = compose_stack.http.get(f"{compose_stack.url(variable)}/health")
        assert reply.status_code == 200, (service, reply.text)


def test_an_upload_reaches_permanent_with_its_tags(compose_stack: ComposeStack) -> None:
    response = compose_stack.upload("in a container")
    assert response.status_code == 200, response.text
    resource_id = response.json()["id"]
    song_url = f"{compose_stack.url('SONG_HOST_PORT')}/songs/{resource_id}"
    song = wait_until(
        lambda: (r := compose_stack.http.get(song_url)).status_code == 200 and r.json(), 60
    )
    assert song["name"] == "in a container"
    wait_until(
        lambda: any(k.endswith(".mp3") for k in compose_stack.permanent_keys()), 30, "PERMANENT"
    )
    download = compose_stack.http.get(
        f"{compose_stack.url('RESOURCE_HOST_PORT')}/resources/{resource_id}"
    )
    assert download.status_code == 200


@pytest.mark.parametrize(
    "service", ["storage-service", "song-service", "resource-service", "resource-processor"]
)
def test_our_containers_run_as_a_non_root_user(compose_stack: ComposeStack, service: str) -> None:
    uid = compose_stack.engine.output("exec", compose_stack.container(service), "id", "-u")
    assert uid.strip() == "10001"


def test_each_service_role_reaches_its_own_database_only(compose_stack: ComposeStack) -> None:
    """Over the network, as the services log in (scram passwords from .env)."""
    secrets = compose_stack.secrets()
    postgres = compose_stack.container("postgres")

    def connects(role: str, database: str) -> bool:
        password = secrets[f"{role.split('_')[0].upper()}_DB_PASSWORD"]
        probe = compose_stack.engine.run(
            "exec", "-e", f"PGPASSWORD={password}", postgres, "psql", "-h", "127.0.0.1",
            "-U", role, "-d", database, "-c", "SELECT 1", quiet=True, check=False,
        )  # fmt: skip
        return probe.returncode == 0

    assert connects("storage_service", "storage_db")
    assert not connects("storage_service", "song_db")
    assert not connects("song_service", "resource_db")
    assert not connects("resource_service", "storage_db")


@pytest.mark.parametrize(
    "service",
    [
        "postgres",
        "rabbitmq",
        "localstack",
        "storage-service",
        "song-service",
        "resource-service",
        "resource-service-2",
        "resource-processor",
        "gateway",
    ],
)
def test_each_running_container_holds_only_its_own_secrets(
    compose_stack: ComposeStack, service: str
) -> None:
    """Issue "No one in, nothing starved", item 6: read from the container's environment, as
    a process in it would see it (`inspect`: the variables it was started with)."""
    secrets = compose_stack.secrets()
    environment = compose_stack.engine.output(
        "inspect", "--format", "{{json .Config.Env}}", compose_stack.container(service)
    )
    held = {name for name in SECRETS if secrets.get(name) and secrets[name] in environment}
    assert held <= CONTAINER_SECRETS[service], held - CONTAINER_SECRETS[service]
    if service == "song-service":
        assert held == {"SONG_DB_PASSWORD"}  # it does get what it needs


def test_the_rabbitmq_user_has_the_platform_vhost_only_and_is_no_administrator(
    compose_stack: ComposeStack,
) -> None:
    rabbitmq = compose_stack.container("rabbitmq")
    users = compose_stack.engine.output("exec", rabbitmq, "rabbitmqctl", "-q", "list_users")
    assert "platform\t[management]" in users, users
    vhosts = compose_stack.engine.output("exec", rabbitmq, "rabbitmqctl", "-q", "list_vhosts")
    assert vhosts.split() == ["name", "platform"], vhosts


def test_a_paused_storage_service_keeps_uploads_at_200_and_fast_once_the_breaker_opens(
    compose_stack: ComposeStack,
) -> None:
    storage = compose_stack.container("storage-service")
    compose_stack.engine.run("pause", storage, quiet=True)
    try:
        for n in range(15):
            response = compose_stack.upload(f"storage paused {n}")
            assert response.status_code == 200, response.text
            if compose_stack.breaker_state() == "OPEN":
                break
        assert compose_stack.breaker_state() == "OPEN"
        started = time.perf_counter()
        response = compose_stack.upload("breaker open")
        assert response.status_code == 200, response.text
        assert time.perf_counter() - started < 0.5  # no call waits for the frozen service
    finally:
        compose_stack.engine.run("unpause", storage, quiet=True)

    def closed_again() -> bool:  # half-open lets a few calls through: uploads make them
        assert compose_stack.upload("storage back").status_code == 200
        return compose_stack.breaker_state() == "CLOSED"

    wait_until(closed_again, 90, "the breaker closed")


def test_a_killed_processor_is_covered_by_its_replica_and_restarted(
    compose_stack: ComposeStack,
) -> None:
    engine = compose_stack.engine
    victim = compose_stack.container("resource-processor", 1)
    pid = int(engine.output("inspect", "--format", "{{.State.Pid}}", victim))
    os.kill(pid, signal.SIGKILL)  # a crash, not a stop: the restart policy applies
    response = compose_stack.upload("one processor down")
    assert response.status_code == 200, response.text
    song_url = f"{compose_stack.url('SONG_HOST_PORT')}/songs/{response.json()['id']}"
    wait_until(lambda: compose_stack.http.get(song_url).status_code == 200, 60, "processed")

    def restarted() -> bool:
        state = engine.output("inspect", "--format", "{{.State.Status}} {{.State.Pid}}", victim)
        status, new_pid = state.split()
        return status == "running" and int(new_pid) not in (0, pid)

    wait_until(restarted, 60, "the restart policy")


def test_the_front_door_serves_the_public_api_only(compose_stack: ComposeStack) -> None:
    door = compose_stack.url("GATEWAY_HOST_PORT")
    for method, path in (("GET", "/storages"), ("POST", "/songs"), ("GET", "/health"),
                         ("GET", "/metrics"), ("GET", "/admin/breakers")):  # fmt: skip
        answer = compose_stack.http.request(method, f"{door}{path}")
        assert answer.status_code in (403, 404), (method, path, answer.status_code)
        assert answer.json()["errorCode"] == str(answer.status_code)
    assert compose_stack.http.get(f"{door}/songs/999999").status_code == 404  # the service's


def test_one_replica_killed_behind_the_door_fails_no_request(compose_stack: ComposeStack) -> None:
    """The walkthrough's row: kill one of the two Resource Service replicas, and uploads,
    downloads and song reads go on through the front door (the gateway tries the other)."""
    door = compose_stack.url("GATEWAY_HOST_PORT")
    engine = compose_stack.engine
    answers, ids = [], []
    for n in range(8):
        if n == 3:
            kill_and_wait_until_refused(engine, compose_stack.container("resource-service"))
        sent = compose_stack.upload(f"behind the door {n}", port="GATEWAY_HOST_PORT")
        answers.append(sent.status_code)
        if sent.status_code == 200:
            ids.append(sent.json()["id"])
            answers.append(compose_stack.http.get(f"{door}/resources/{ids[-1]}").status_code)
    logs = [engine.name, "logs", "--tail", "20", compose_stack.container("gateway")]
    gateway_log = subprocess.run(logs, capture_output=True, text=True)
    assert answers == [200] * len(answers), gateway_log.stdout + gateway_log.stderr
    # nginx names both replicas on a request it sent on after the dead one refused it.
    assert "8080, " in gateway_log.stdout, gateway_log.stdout
    songs = [f"{door}/songs/{resource_id}" for resource_id in ids]
    wait_until(
        lambda: all(compose_stack.http.get(song).status_code == 200 for song in songs),
        90,
        "every song through the door",
    )


def kill_and_wait_until_refused(engine: Engine, container: str) -> None:
    """SIGKILL the replica, then wait until its port refuses connections, as a replica that is
    down does. Before that, for a few milliseconds, a connection is still accepted and then
    reset: a request sent in that instant is lost (nginx does not send a POST twice)."""
    state = json.loads(engine.output("inspect", container))[0]
    address = next(iter(state["NetworkSettings"]["Networks"].values()))["IPAddress"]
    os.kill(state["State"]["Pid"], signal.SIGKILL)

    def refused() -> bool:
        try:
            socket.create_connection((address, 8080), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False

    wait_until(refused, 10, f"{container} refusing connections")


def test_volumes_made_with_other_secrets_are_named_with_what_to_do(
    compose_stack: ComposeStack,
) -> None:
    """Issue "A codebase the next engineer can carry": `make compose-down`, the env file
    removed, `make compose-up` said "not healthy after 300 s" and no reason. The volumes keep
    the passwords they were made with; compose-up now logs in as the services do and says so."""
    down = make("compose-down", compose_stack.env, timeout=300)  # the volumes stay
    assert down.returncode == 0, down.stdout + down.stderr
    compose_stack.project.env_file.unlink()
    up = make("compose-up", compose_stack.env, timeout=600)
    assert up.returncode != 0
    assert "postgres (POSTGRES_PASSWORD), rabbitmq (RABBITMQ_PASSWORD)" in up.stderr, up.stderr
    assert "make compose-down VOLUMES=1" in up.stderr, up.stderr


def test_compose_down_leaves_no_container_network_volume_or_listener(
    compose_stack: ComposeStack,
) -> None:
    """Last in the module: the fixture's own compose-down then finds nothing to do."""
    down = make("compose-down", {**compose_stack.env, "VOLUMES": "1"}, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    engine = compose_stack.engine
    assert containers(engine, compose_stack.project) == []
    for kind in ("network", "volume"):
        names = engine.output(kind, "ls", "--format", "{{.Name}}").split()
        assert [n for n in names if n.startswith(compose_stack.project.name)] == [], kind
    for variable in {**APP_PORTS, **INFRA_PORTS}:
        assert port_is_free(int(compose_stack.env[variable])), variable
