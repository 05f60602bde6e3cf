"""Dashboard viewers share one snapshot a second, and their number is bounded (issue "No one
in, nothing starved", item 7): each open `/dashboard/stream` used to run its own two database
queries a second on the pool everything else needs."""

from __future__ import annotations

import asyncio
import re

import httpx2
import pytest

from devstack.testing.stack import Stack, wait_until
from tests.contract import assert_error
from tests.fixture_types import StackStarter

MAX_VIEWERS = 6


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack(
        "dashboard-viewers", resource_env={"DASHBOARD_MAX_VIEWERS": str(MAX_VIEWERS)}
    )


def metric(stack: Stack, name: str) -> float:
    text = stack.http.get(f"{stack.resource.url}/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def watch(client: httpx2.AsyncClient, url: str, snapshots: int) -> int:
    """Read the stream until `snapshots` snapshot events came; how many came."""
    seen = 0
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line == "event: snapshot":
                seen += 1
                if seen == snapshots:
                    return seen
    return seen


def test_viewers_share_one_snapshot_a_second_and_one_too_many_is_refused(stack: Stack) -> None:
    url = f"{stack.resource.url}/dashboard/stream"
    before = metric(stack, "dashboard_snapshots_total")

    async def run() -> tuple[list[int], httpx2.Response]:
        async with httpx2.AsyncClient(timeout=30) as client:
            viewers = [asyncio.ensure_future(watch(client, url, 4)) for _ in range(MAX_VIEWERS)]
            await asyncio.sleep(1.0)  # let them all connect: the load, not a wait for a result
            refused = await client.get(url)
            return await asyncio.gather(*viewers), refused

    seen, refused = asyncio.run(run())
    assert seen == [4] * MAX_VIEWERS
    assert_error(
        refused,
        503,
        f"Too many dashboard viewers (at most {MAX_VIEWERS}), try again later",
    )
    assert refused.headers["Retry-After"] == "5"
    taken = metric(stack, "dashboard_snapshots_total") - before
    # 24 snapshot events over about four seconds: one snapshot a second served them all (a
    # snapshot per viewer per second would be 24).
    assert taken <= 7, taken
    # Every place is given back: a new viewer gets in.
    wait_until(lambda: metric(stack, "dashboard_viewers") == 0, 10, "viewers released")

    async def one_more() -> int:
        async with httpx2.AsyncClient(timeout=30) as client:
            return await watch(client, url, 1)

    assert asyncio.run(one_more()) == 1
