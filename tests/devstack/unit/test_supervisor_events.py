"""supervisord's log lines become one sentence each; its config follows the restart policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devstack.runner import servers
from devstack.runner.main import describe
from devstack.runner.services import RunSettings, programs
from devstack.runner.supervisor import Event, RunPaths, last_exits, parse_event, render_config

LOG = """\
2026-12-01 20:31:00,001 INFO spawned: 'storage-service' with pid 4242
2026-12-01 20:31:00,002 INFO success: storage-service entered RUNNING state, process has stayed up
2026-12-01 20:31:02,118 WARN exited: storage-service (terminated by SIGKILL; not expected)
2026-12-01 20:31:03,000 WARN exited: song-service (exit status 1; not expected)
2026-12-01 20:31:04,000 INFO exited: resource-processor (exit status 0; expected)
2026-12-01 20:31:05,000 WARN stopped: resource-service (terminated by SIGTERM)
2026-12-01 20:31:06,000 INFO gave up: song-service entered FATAL state, too many start retries
"""


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (0, Event("spawned", "storage-service", "pid 4242")),
        (2, Event("exited", "storage-service", "killed by SIGKILL")),
        (3, Event("exited", "song-service", "exit status 1")),
        (4, Event("exited", "resource-processor", "exit status 0", expected=True)),
        (5, Event("stopped", "resource-service", "SIGTERM")),
        (6, Event("gave up", "song-service", "it kept exiting right after start")),
    ],
)
def test_each_log_line_is_one_event(line: int, event: Event) -> None:
    assert parse_event(LOG.splitlines()[line]) == event


def test_other_lines_are_not_events() -> None:
    assert parse_event(LOG.splitlines()[1]) is None
    assert parse_event("") is None


def test_last_exits_keeps_each_services_latest_exit() -> None:
    exits = last_exits(LOG)
    assert exits["song-service"].kind == "gave up"
    assert exits["storage-service"].reason == "killed by SIGKILL"
    assert "spawned" not in {e.kind for e in exits.values()}


def test_a_kill_says_how_to_start_it_again_or_that_it_restarts() -> None:
    killed = Event("exited", "storage-service", "killed by SIGKILL")
    assert describe(killed, "no") == (
        "storage-service exited (killed by SIGKILL); the others keep running. "
        "Start it again: make start SERVICE=storage-service"
    )
    assert describe(killed, "on-failure").endswith("Restarting it (RESTART=on-failure).")
    clean = Event("exited", "storage-service", "exit status 0", expected=True)
    assert "Start it again" in describe(clean, "on-failure")


@pytest.mark.parametrize(
    ("restart", "autorestart"), [("no", "false"), ("on-failure", "unexpected")]
)
def test_config_follows_the_restart_policy(restart: str, autorestart: str, tmp_path: Path) -> None:
    settings = RunSettings(dir=tmp_path, restart=restart, database_prefix="x_")
    config = render_config(RunPaths(tmp_path), programs(settings), restart)
    sections = config.split("\n\n")
    storage = next(s for s in sections if s.startswith("[program:storage-service]"))
    assert f"autorestart={autorestart}" in storage
    assert "-m devstack.runner.child" in storage  # dies with supervisord, whatever kills it
    assert (
        'DATABASE_URL="postgresql+psycopg://x_storage_service@127.0.0.1:5432/x_storage_db"'
        in storage
    )
    assert "programs=postgres,rabbitmq,localstack,storage-service,song-service," in config


def test_our_own_servers_run_as_their_packages_users_and_stop_their_way(tmp_path: Path) -> None:
    """PostgreSQL and RabbitMQ, when the run starts them (devstack.runner.servers): as the packages'
    unprivileged users when we are root, PostgreSQL stopped by SIGINT (its fast shutdown),
    RabbitMQ as its own node with its own epmd port, never the machine's /etc/rabbitmq."""
    settings = RunSettings(dir=tmp_path, rabbitmq_url="amqp://guest:guest@127.0.0.1:25999/")
    sections = render_config(RunPaths(tmp_path), programs(settings), "no").split("\n\n")
    postgres = next(s for s in sections if s.startswith("[program:postgres]"))
    rabbitmq = next(s for s in sections if s.startswith("[program:rabbitmq]"))
    root = os.geteuid() == 0
    data = servers.data_dir(tmp_path, "postgres", "postgres" if root else None)
    assert "stopsignal=INT" in postgres and f"-D {data} -p 5432" in postgres
    assert ("devstack.runner.child --user postgres" in postgres) == root
    assert 'RABBITMQ_NODENAME="songplatform@localhost"' in rabbitmq
    assert 'RABBITMQ_NODE_PORT="25999"' in rabbitmq and 'ERL_EPMD_PORT="24699"' in rabbitmq
    home = servers.data_dir(tmp_path, "rabbitmq", "rabbitmq" if root else None)
    assert f'RABBITMQ_CONF_ENV_FILE="{home / "rabbitmq-env.conf"}"' in rabbitmq


def test_a_percent_in_a_value_survives_supervisords_expansion(tmp_path: Path) -> None:
    settings = RunSettings(dir=tmp_path, rabbitmq_url="amqp://u:p%40ss@127.0.0.1:5672/v")
    config = render_config(RunPaths(tmp_path), programs(settings), "no")
    assert 'RABBITMQ_URL="amqp://u:p%%40ss@127.0.0.1:5672/v"' in config
