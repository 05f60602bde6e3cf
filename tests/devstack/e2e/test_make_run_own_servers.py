"""Two commands on any machine (issue "Two commands on any machine"): pointed at addresses where
no PostgreSQL and no RabbitMQ answer, `make run` starts its own, says so, serves the walkthrough
on them, lets `make pause|unpause` freeze the broker by name, and `make down` leaves nothing
running or listening. The machine's own servers stay untouched: only free ports are used.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import httpx2
import pytest
from pytest import TempPathFactory

from devstack.runner import servers
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import free_port, wait_until
from tests.devstack.e2e.conftest import SERVICES, MakeRun, all_gone, listening


def ps_rows(run: MakeRun) -> dict[str, list[str]]:
    result = run.make("ps")
    assert result.returncode == 0, result.stderr
    return {row[0]: row for row in map(str.split, result.stdout.splitlines()[1:])}


def upload(run: MakeRun, title: str) -> int:
    answer = httpx2.post(
        f"{run.programs['resource-service'].url}/resources",
        content=make_mp3(1, title=title),
        headers={"Content-Type": "audio/mpeg"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def tags_arrive(run: MakeRun, resource_id: int, timeout: float = 60) -> None:
    song = f"{run.programs['song-service'].url}/songs/{resource_id}"
    wait_until(lambda: httpx2.get(song).status_code == 200, timeout, f"song {resource_id}")


def test_make_run_starts_its_own_postgres_and_rabbitmq_and_stops_them(
    start_make_run: Callable[..., MakeRun],
) -> None:
    postgres_port, rabbitmq_port = free_port(), free_port()
    run = start_make_run(
        RUN_POSTGRES_URL=f"postgresql+psycopg://postgres@127.0.0.1:{postgres_port}",
        RUN_RABBITMQ_URL=f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/",
    )
    for name, scheme, port in [
        ("postgres", "postgresql", postgres_port),
        ("rabbitmq", "amqp", rabbitmq_port),
    ]:
        assert run.said(f"{scheme}://127.0.0.1:{port}  (started by make run").startswith(name)
    rows = ps_rows(run)
    assert rows["postgres"][1:2] == ["running"] and rows["rabbitmq"][1:2] == ["running"]
    assert rows["postgres"][3] == str(postgres_port) and rows["postgres"][4] == "UP"

    tags_arrive(run, upload(run, "on our own servers"))

    # Freeze the broker by name: uploads still answer (the outbox keeps the event), and the
    # tags arrive once it thaws.
    assert run.make("pause", "SERVICE=rabbitmq").returncode == 0
    assert ps_rows(run)["rabbitmq"][1] == "paused"
    frozen_upload = upload(run, "while the broker is frozen")
    assert run.make("unpause", "SERVICE=rabbitmq").returncode == 0
    tags_arrive(run, frozen_upload, timeout=90)

    started = run.started_pids()
    epmd = servers.epmd_port(rabbitmq_port)
    down = run.make("down")
    assert down.returncode == 0, down.stderr
    assert run.process.wait(30) == 0
    ports = [postgres_port, rabbitmq_port, epmd, *(run.programs[n].port for n in SERVICES)]
    wait_until(lambda: all_gone(started, ports), 15, "no process and no listener left")
    assert not listening(epmd + 1)  # the broker's distribution port


@pytest.fixture(autouse=True)
def no_data_left(
    start_make_run: Callable[..., MakeRun], tmp_path_factory: TempPathFactory
) -> Iterator[None]:
    """The servers' data of this test's runs: under /var/tmp when pytest's private temporary
    folder is out of their users' reach (devstack.runner.servers.data_dir)."""
    yield
    for run_dir in tmp_path_factory.getbasetemp().glob("run*"):
        for name, user in [("postgres", "postgres"), ("rabbitmq", "rabbitmq")]:
            shutil.rmtree(servers.data_dir(run_dir, name, user), ignore_errors=True)
