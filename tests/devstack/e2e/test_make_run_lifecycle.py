"""How a `make run` ends, and how it restarts what crashes: each test starts one of its own."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import httpx2
import psutil

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import free_port, wait_until
from tests.devstack.e2e.conftest import SERVICES, MakeRun, all_gone, listening, stop


def ports(run: MakeRun, localstack: bool = False) -> list[int]:
    """The ports of what this run served: its services, and LocalStack when it started it (the
    session's PostgreSQL and RabbitMQ answered, so the run started none of its own)."""
    served = [*SERVICES, "gateway", *(["localstack"] if localstack else [])]
    return [run.programs[name].port for name in served]


def test_ctrl_c_stops_everything_it_started_localstack_included(
    start_make_run: Callable[..., MakeRun],
) -> None:
    # A port nothing answers on: this run starts LocalStack itself, so it must stop it too.
    run = start_make_run(s3_port=free_port())
    s3_url = run.programs["localstack"].url
    assert run.said(s3_url).split() == ["localstack", s3_url]
    started = run.started_pids()
    assert len(started) >= 8  # make, the run command, supervisord, LocalStack, four services

    os.killpg(run.process.pid, signal.SIGINT)
    assert run.process.wait(30) is not None
    run.said("Everything make run started has stopped.")
    everything = ports(run, localstack=True)
    wait_until(lambda: all_gone(started, everything), 10, "no process and no listener left")


def test_sigkill_of_the_run_command_leaves_nothing_within_10_s(
    start_make_run: Callable[..., MakeRun],
) -> None:
    run = start_make_run()
    started = run.started_pids()
    # A frozen service must not hold the exit up: it cannot handle SIGTERM.
    os.kill(run.pid("storage-service"), signal.SIGSTOP)
    os.killpg(run.process.pid, signal.SIGKILL)  # make and the run command, at once
    wait_until(lambda: all_gone(started, ports(run)), 10, "no process and no listener left")


def test_restart_on_failure_brings_a_crashed_service_back_and_down_ends_it(
    start_make_run: Callable[..., MakeRun],
) -> None:
    run = start_make_run("RESTART=on-failure")
    name = "song-service"
    pid = run.pid(name)
    os.kill(pid, signal.SIGKILL)
    run.said(f"{name} exited (killed by SIGKILL); the others keep running. Restarting it")
    wait_until(lambda: run.healthy(name) and run.pid(name) != pid, 30, f"{name} back")
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    # A stop by hand is not a failure: it stays stopped.
    assert run.make("stop", f"SERVICE={name}").returncode == 0
    assert not listening(run.programs[name].port)
    assert "exited" in run.make("ps").stdout.split(name, 1)[1].splitlines()[0]

    started = run.started_pids()
    down = run.make("down")
    assert down.returncode == 0, down.stderr
    assert run.process.wait(30) == 0
    run.said("Stopped by make down.")
    wait_until(lambda: all_gone(started, ports(run)), 10, "no process and no listener left")
    again = run.make("down")
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    # `make down` stops everything at once: that is no outage of one service to report.
    assert not [line for line in run.terminal if line.startswith("storage-service stopped")]


def test_an_empty_localstack_under_kept_rows_is_said_and_make_reset_starts_clean(
    start_make_run: Callable[..., MakeRun],
) -> None:
    """LocalStack keeps objects in memory: the same platform started again has its rows and no
    files. The run says so in one line, GET names the missing file, and `make reset` (after the
    run is down) gives a clean start."""
    first = start_make_run(s3_port=free_port())
    resources = f"{first.programs['resource-service'].url}/resources"
    uploaded = httpx2.post(resources, content=make_mp3(1), headers={"Content-Type": "audio/mpeg"})
    resource_id = uploaded.json()["id"]
    stop(first)
    same_platform = {k: v for k, v in first.env.items() if k.startswith("RUN_")}

    again = start_make_run(**same_platform)
    again.said("S3 (LocalStack) started empty while the resource database holds 1 resource(s)")
    assert httpx2.get(f"{resources}/{resource_id}").json()["errorMessage"] == (
        f"The file of resource ID={resource_id} is missing from storage"
    )
    assert "make run is up" in again.make("reset").stderr  # refused while it runs
    stop(again)
    reset = again.make("reset")
    assert reset.returncode == 0, reset.stderr
    assert "dropped the databases" in reset.stdout

    clean = start_make_run(**same_platform)
    assert not any("started empty" in line for line in clean.terminal)
    assert httpx2.get(f"{resources}/{resource_id}").json()["errorMessage"] == (
        f"Resource with ID={resource_id} not found"
    )
