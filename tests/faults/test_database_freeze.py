"""A frozen database costs seconds, not hangs (issue "No one in, nothing starved", item 7).

Each service reaches PostgreSQL through a fault proxy; the proxy's HOLD mode forwards nothing
and closes nothing, which is what a SIGSTOPped or black-holed server looks like to its clients:
the server's kernel keeps acknowledging, so TCP's own timeouts never fire, and a stopped server
enforces no statement timeout. What a user sees: 503 "Database unavailable" within
DB_TIMEOUT_SECONDS (2 here) for every call that needs the database, however many arrive, while
liveness and the routes that need no database answer at once; and everything works again once
the database thaws.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx2
import pytest

from devstack.testing.faultproxy import FaultProxy, Mode
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from tests.contract import assert_error
from tests.fixture_types import DatabaseUrls, StackStarter
from tests.infra import Infrastructure

DB_TIMEOUT = 2.0
# Past the deadline: the time an answer may take to travel and the check interval of the
# waits. The database threads are 8: twice as many calls at once must all be answered.
MARGIN = 1.5
AT_ONCE = 16
SERVICES = ("storage", "song", "resource")


@pytest.fixture(scope="module")
def database_proxies(infra: Infrastructure) -> Iterator[dict[str, FaultProxy]]:
    server = urlsplit(infra.postgres_url)
    assert server.hostname, infra.postgres_url
    proxies = {name: FaultProxy(server.port, server.hostname).start() for name in SERVICES}
    yield proxies
    for proxy in proxies.values():
        proxy.close()


@pytest.fixture(scope="module")
def stack(
    start_module_stack: StackStarter,
    new_database_url: DatabaseUrls,
    database_proxies: dict[str, FaultProxy],
) -> Stack:
    def through_proxy(name: str) -> str:
        return str(database_proxies[name].via(new_database_url(name)))

    return start_module_stack(
        "db-freeze",
        new_database_url=through_proxy,
        common_env={"DB_TIMEOUT_SECONDS": str(DB_TIMEOUT)},
    )


def database_call(stack: Stack, service: str) -> httpx2.Request:
    """A request of `service` that needs its database."""
    url = getattr(stack, service).url
    if service == "storage":
        return httpx2.Request("GET", f"{url}/storages")
    if service == "song":
        return httpx2.Request("GET", f"{url}/songs/1")
    return httpx2.Request("GET", f"{url}/resources/1")


def timed(
    send: Callable[[httpx2.Request], httpx2.Response], request: httpx2.Request
) -> tuple[httpx2.Response, float]:
    started = time.monotonic()
    response = send(request)
    return response, time.monotonic() - started


@pytest.mark.parametrize("service", SERVICES)
def test_a_frozen_database_answers_503_in_seconds_and_starves_nothing_else(
    stack: Stack, database_proxies: dict[str, FaultProxy], service: str
) -> None:
    proxy = database_proxies[service]
    proxy.set_mode(Mode.HOLD)
    try:
        with httpx2.Client(timeout=30) as http, ThreadPoolExecutor(AT_ONCE) as pool:
            answers = list(
                pool.map(lambda _: timed(http.send, database_call(stack, service)), range(AT_ONCE))
            )
            live, live_seconds = timed(
                http.send, httpx2.Request("GET", f"{getattr(stack, service).url}/health/live")
            )
        for response, seconds in answers:
            assert_error(response, 503, "Database unavailable, try again later")
            assert seconds < DB_TIMEOUT + MARGIN, f"{service} answered after {seconds:.1f} s"
        assert live.status_code == 200 and live_seconds < 1.0
    finally:
        proxy.set_mode(Mode.PASS)
    # Thawed: the held calls finish, and the next ones are served.
    wait_until(lambda: stack.http.send(database_call(stack, service)).status_code != 503, 30)


def test_an_upload_while_the_resource_database_is_frozen_is_503_and_keeps_nothing(
    stack: Stack, database_proxies: dict[str, FaultProxy]
) -> None:
    proxy = database_proxies["resource"]
    rows_before = stack.resource_rows()
    proxy.set_mode(Mode.HOLD)
    try:
        response, seconds = timed(
            stack.http.send,
            httpx2.Request(
                "POST",
                f"{stack.resource.url}/resources",
                content=make_mp3(1, title="frozen"),
                headers={"Content-Type": "audio/mpeg"},
            ),
        )
    finally:
        proxy.set_mode(Mode.PASS)
    assert_error(response, 503, "Database unavailable, try again later")
    assert seconds < DB_TIMEOUT + MARGIN
    assert stack.resource_rows() == rows_before
    after = stack.upload(make_mp3(1, title="thawed"))
    assert after.status_code == 200, after.text
    stack.wait_permanent(after.json()["id"], timeout=30)
