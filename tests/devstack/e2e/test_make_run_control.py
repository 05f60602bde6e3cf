"""Break it by hand: one `make run`, and a second terminal that kills, freezes and controls it.

Each test begins with every service running (the autouse fixture puts back what an earlier
test left down), so no test depends on another's order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import psutil
import pytest

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import wait_until
from tests.devstack.e2e.conftest import REPO, SERVICES, MakeRun, listening

# Small numbers, so that the breaker opens within a few uploads.
BREAKER_ENV = {
    "STORAGE_TIMELIMITER_TIMEOUT_DURATION": "0.5",
    "STORAGE_BREAKER_MINIMUM_NUMBER_OF_CALLS": "3",
    "STORAGE_BREAKER_SLIDING_WINDOW_SIZE": "5",
    "STORAGE_BREAKER_WAIT_DURATION_IN_OPEN_STATE": "2",
}


@pytest.fixture(scope="module")
def run(start_make_run: Callable[..., MakeRun]) -> MakeRun:
    return start_make_run(**BREAKER_ENV)


@pytest.fixture(autouse=True)
def every_service_running(run: MakeRun) -> Iterator[None]:
    for name in SERVICES:
        state = ps_row(run, name)[1]
        if state == "paused":
            assert run.make("unpause", f"SERVICE={name}").returncode == 0
        elif state != "running":
            assert run.make("start", f"SERVICE={name}").returncode == 0, state
        run.wait_healthy(name)
    yield


def ps_row(run: MakeRun, name: str) -> list[str]:
    result = run.make("ps")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    matching = [row for row in rows if row[0] == name]
    assert len(matching) == 1, result.stdout
    return matching[0]


def upload(run: MakeRun, data: bytes) -> httpx2.Response:
    url = run.programs["resource-service"].url
    return httpx2.post(
        f"{url}/resources", content=data, headers={"Content-Type": "audio/mpeg"}, timeout=30
    )


def others_answer(run: MakeRun, down: str) -> None:
    for name in SERVICES:
        if name != down:
            assert run.healthy(name), f"{name} stopped answering while {down} was down"


def test_ps_names_every_service_with_state_pid_port_and_health(run: MakeRun) -> None:
    result = run.make("ps")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "PID", "PORT", "HEALTH", "DETAILS"]
    for name in SERVICES:
        row = ps_row(run, name)
        assert row[1] == "running"
        assert int(row[2]) == run.pid(name)
        assert int(row[3]) == run.programs[name].port
        assert row[4] == "UP"
    assert "storage breaker CLOSED" in " ".join(ps_row(run, "resource-service"))
    # The test session's LocalStack answers on the S3 port: served from outside this run.
    assert ps_row(run, "localstack")[1] == "outside"


@pytest.mark.parametrize("name", SERVICES)
def test_sigkill_of_one_service_leaves_the_others_serving(run: MakeRun, name: str) -> None:
    pid = run.pid(name)
    os.kill(pid, signal.SIGKILL)
    line = run.said(f"{name} exited (killed by SIGKILL)")
    assert line == (
        f"{name} exited (killed by SIGKILL); the others keep running. "
        f"Start it again: make start SERVICE={name}"
    )
    others_answer(run, name)
    row = ps_row(run, name)
    assert row[1:3] == ["exited", "-"] and "killed by SIGKILL" in " ".join(row)
    assert run.process.poll() is None, "make run itself stopped"


@pytest.mark.parametrize("name", SERVICES)
def test_sigstop_of_one_service_leaves_the_others_serving(run: MakeRun, name: str) -> None:
    pid = run.pid(name)
    os.kill(pid, signal.SIGSTOP)
    try:
        run.said(f"{name} paused (SIGSTOP)")
        others_answer(run, name)
        assert ps_row(run, name)[1] == "paused"
    finally:
        os.kill(pid, signal.SIGCONT)
    run.said(f"{name} unpaused")
    run.wait_healthy(name)


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_uploads_stay_200_while_storage_is_down_and_reach_permanent(
    run: MakeRun, fault: str
) -> None:
    data = make_mp3(seconds=1, title="By hand", artist="Tester")
    assert run.make(fault, "SERVICE=storage-service").returncode == 0
    answers = [upload(run, data) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    assert "storage breaker OPEN" in " ".join(ps_row(run, "resource-service"))
    song_url = run.programs["song-service"].url
    ids = [answer.json()["id"] for answer in answers]

    def every_song_stored() -> bool:  # the processor goes on: the tags arrive for every upload
        return all(httpx2.get(f"{song_url}/songs/{rid}").status_code == 200 for rid in ids)

    wait_until(every_song_stored, 30)
    back = "start" if fault == "kill" else "unpause"
    assert run.make(back, "SERVICE=storage-service").returncode == 0


def test_stop_start_restart_kill_pause_unpause_do_what_they_say(run: MakeRun) -> None:
    name, port = "song-service", run.programs["song-service"].port
    result = run.make("stop", f"SERVICE={name}")
    assert result.returncode == 0 and result.stdout.strip() == f"{name} stopped"
    assert not listening(port)
    assert ps_row(run, name)[1] == "exited" and "stopped" in " ".join(ps_row(run, name))

    assert run.make("start", f"SERVICE={name}").returncode == 0
    assert run.healthy(name) and ps_row(run, name)[1] == "running"

    before = run.pid(name)
    assert run.make("restart", f"SERVICE={name}").returncode == 0
    assert run.pid(name) != before and run.healthy(name)

    pid = run.pid(name)
    assert run.make("pause", f"SERVICE={name}").returncode == 0
    assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    assert run.make("unpause", f"SERVICE={name}").returncode == 0
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
    run.wait_healthy(name)

    assert run.make("kill", f"SERVICE={name}").returncode == 0
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "killed by SIGKILL" in " ".join(ps_row(run, name))


def test_logs_follows_the_service_log(run: MakeRun) -> None:
    follower = subprocess.Popen(
        ["make", "--no-print-directory", "logs", "SERVICE=storage-service"],
        cwd=REPO,
        env=run.env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # As a background job of a script starts it (CI's, say): Ctrl-C must still end it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert follower.stdout is not None
        # The service's own JSON log lines, starting with what it logged at start.
        first = follower.stdout.readline()
        assert first.startswith("{") and '"event"' in first
        httpx2.get(f"{run.programs['storage-service'].url}/storages")  # still following
        assert follower.poll() is None
    finally:
        os.killpg(follower.pid, signal.SIGINT)
        follower.wait(10)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["stop", "SERVICE=nope"], "unknown service 'nope'"),
        (["kill"], "name a service"),
    ],
)
def test_unknown_or_missing_name_gets_one_clear_line(
    run: MakeRun, args: list[str], says: str
) -> None:
    result = run.make(*args)
    assert result.returncode != 0
    assert says in result.stderr.splitlines()[0]


def test_every_command_without_a_make_run_says_so(run: MakeRun, tmp_path: Path) -> None:
    env = {**run.env, "RUN_DIR": str(tmp_path)}
    for args in (["ps"], ["stop", "SERVICE=song-service"], ["logs", "SERVICE=song-service"]):
        result = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode != 0
        assert "no `make run` is up" in result.stderr.splitlines()[0]


def test_a_service_started_by_hand_is_reported_and_not_fought_over(run: MakeRun) -> None:
    name = "song-service"
    program = run.programs[name]
    assert run.make("stop", f"SERVICE={name}").returncode == 0
    by_hand = subprocess.Popen(
        [sys.executable, "-m", "song_service"],
        cwd=REPO,
        env={**run.env, **program.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        run.wait_healthy(name)
        row = ps_row(run, name)
        assert row[1:3] == ["outside", str(by_hand.pid)], row
        refused = run.make("start", f"SERVICE={name}")
        assert refused.returncode != 0
        assert "served from outside make run" in refused.stderr
        assert by_hand.poll() is None and run.healthy(name)
    finally:
        by_hand.terminate()
        by_hand.wait(10)
