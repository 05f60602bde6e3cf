"""supervisord's process state events become one sentence each, through its event-listener
protocol; its config follows the restart policy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.runner import servers
from devstack.runner.listener import tokens
from devstack.runner.main import describe
from devstack.runner.services import RunSettings, programs
from devstack.runner.supervisor import Event, RunPaths, event_of, last_exits, render_config

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
    ("state", "fields", "event"),
    [
        (
            "RUNNING",
            "processname:storage-service pid:4242",
            Event("spawned", "storage-service", "pid 4242"),
        ),
        (
            "EXITED",
            "processname:storage-service expected:0 pid:4242",
            Event("exited", "storage-service", "killed by SIGKILL"),
        ),
        (
            "EXITED",
            "processname:song-service expected:0 pid:7",
            Event("exited", "song-service", "exit status 1"),
        ),
        (
            "EXITED",
            "processname:resource-processor expected:1 pid:8",
            Event("exited", "resource-processor", "exit status 0", expected=True),
        ),
        (
            "STOPPED",
            "processname:resource-service pid:9",
            Event("stopped", "resource-service", "SIGTERM"),
        ),
        (
            "FATAL",
            "processname:song-service",
            Event("gave up", "song-service", "it kept exiting right after start"),
        ),
    ],
)
def test_each_state_event_is_one_event_with_its_logged_cause(
    state: str, fields: str, event: Event
) -> None:
    assert event_of(state, tokens(fields), lambda: LOG) == event


@pytest.mark.parametrize("state", ["STARTING", "BACKOFF", "STOPPING"])
def test_passing_states_are_no_events(state: str) -> None:
    def unread() -> str:
        raise AssertionError("the log is read for an exit or a stop only")

    assert event_of(state, {"processname": "song-service"}, unread) is None


def test_the_listener_speaks_supervisords_protocol_and_records_each_state_change(
    tmp_path: Path,
) -> None:
    """The exchange of http://supervisord.org/events.html: READY; a header line whose `len` is
    the payload's size in bytes; the payload; RESULT 2 and OK; READY again. Events that are
    not process state changes are acknowledged and not recorded."""
    events, log = tmp_path / "events.jsonl", tmp_path / "supervisord.log"
    storage = "processname:storage-service groupname:platform"
    log.write_text(LOG)
    notifications = [
        ("PROCESS_STATE_RUNNING", f"{storage} from_state:STARTING pid:4242"),
        ("TICK_5", "when:1767225600"),
        ("PROCESS_STATE_EXITED", f"{storage} from_state:RUNNING expected:0 pid:4242"),
    ]
    sent = b"".join(
        f"ver:3.0 server:supervisor serial:{n} pool:events poolserial:{n} eventname:{name} "
        f"len:{len(payload)}\n{payload}".encode()
        for n, (name, payload) in enumerate(notifications)
    )
    listener = subprocess.run(
        [sys.executable, "-m", "devstack.runner.listener", str(events), str(log)],
        input=sent,
        capture_output=True,
        timeout=30,
    )
    # stdin ends after the third: the listener fails reading a fourth header, having answered.
    assert listener.stdout == b"READY\n" + b"RESULT 2\nOKREADY\n" * 3
    assert last_exits(events.read_text()) == {
        "storage-service": Event("exited", "storage-service", "killed by SIGKILL")
    }
    assert (
        events.read_text().splitlines()[0]
        == Event("spawned", "storage-service", "pid 4242").to_json()
    )


def test_last_exits_keeps_each_services_latest_exit() -> None:
    recorded = [
        Event("spawned", "song-service", "pid 1"),
        Event("exited", "song-service", "exit status 1"),
        Event("gave up", "song-service", "it kept exiting right after start"),
        Event("exited", "storage-service", "killed by SIGKILL"),
    ]
    exits = last_exits("".join(e.to_json() + "\n" for e in recorded))
    assert exits == {"song-service": recorded[2], "storage-service": recorded[3]}


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
    listener = next(s for s in sections if s.startswith("[eventlistener:events]"))
    assert "events=PROCESS_STATE" in listener and "-m devstack.runner.listener" in listener


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
