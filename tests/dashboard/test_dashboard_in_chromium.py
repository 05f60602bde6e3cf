"""The breaker you can watch (GET /dashboard), in a real browser: Debian's Chromium driven by
playwright against a real stack. Freeze the Storage Service and upload: the tile turns OPEN
without a reload within a second and names the fallback; thaw it: the tile returns to CLOSED.

DASHBOARD_SCREENSHOT=images/dashboard.png makes the test save its screenshot there (the picture in
docs/resilience.md is one); otherwise it goes to the test's temporary folder.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from devstack.apt import ensure_commands
from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import Stack, wait_until
from tests.fixture_types import StackStarter

if TYPE_CHECKING:  # imported in the tests: only this module needs playwright
    from playwright.sync_api import ConsoleMessage, Page

pytestmark = pytest.mark.timeout(300)
CHROMIUM = "/usr/bin/chromium"
# The flags this machine kind needs (closed network: no background connections), headless.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    ensure_commands({"chromium": "chromium"})  # Debian's, installed once per machine
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(start_module_stack: StackStarter) -> Stack:
    return start_module_stack("dashboard")


@pytest.fixture
def script_errors() -> list[str]:
    """What the page under test threw or logged as an error, in order."""
    return []


@pytest.fixture
def page(chromium: str, script_errors: list[str]) -> Iterator[Page]:
    from playwright.sync_api import sync_playwright

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            script_errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.on("console", console)
        yield page
        browser.close()


def breaker_state(stack: Stack) -> str:
    health = stack.http.get(f"{stack.resource.url}/health").json()
    return str(health["checks"]["storageBreaker"]["state"])


def test_the_tile_turns_open_and_closed_live_while_the_storage_service_freezes(
    stack: Stack, page: Page, script_errors: list[str], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.resource.url}/dashboard")
    state = page.locator('[data-breaker="storage"] [data-field="state"]')
    expect(state).to_have_text("CLOSED", timeout=5000)
    assert stack.upload(make_mp3(1, title="before")).status_code == 200
    expect(page.locator('[data-field="source"]')).to_have_text("live", timeout=3000)

    stack.storage.signal(signal.SIGSTOP)
    try:
        for n in range(10):  # each waits out the 2 s time limit until the breaker opens
            assert stack.upload(make_mp3(1, title=f"frozen {n}")).status_code == 200
            if breaker_state(stack) == "OPEN":
                break
        assert breaker_state(stack) == "OPEN"
        # The upload that opened it has returned: the page shows it within a second.
        expect(state).to_have_text("OPEN", timeout=1000)
        assert stack.upload(make_mp3(1, title="served by the fallback")).status_code == 200
        expect(page.locator('[data-field="source"]')).to_have_text("last_good", timeout=3000)
        expect(page.locator('[data-field="transitions"] li').first).to_contain_text("CLOSED → OPEN")
        screenshot = Path(os.environ.get("DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
        page.screenshot(path=str(screenshot), full_page=True)
    finally:
        stack.storage.signal(signal.SIGCONT)

    def closed_again() -> bool:  # HALF_OPEN lets the trial calls through: uploads make them
        assert stack.upload(make_mp3(1, title="thawed")).status_code == 200
        return breaker_state(stack) == "CLOSED"

    wait_until(closed_again, 30, "the breaker closed")
    expect(state).to_have_text("CLOSED", timeout=1000)
    assert script_errors == []


def test_the_admin_buttons_appear_only_with_a_token_the_service_accepts(
    stack: Stack, page: Page
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{stack.resource.url}/dashboard")
    actions = page.locator("#admin-actions")
    expect(actions).to_be_hidden()
    page.fill("#token", "made-up")
    page.click("#use-token")
    expect(page.locator("#admin-result")).to_have_text("token refused")
    expect(actions).to_be_hidden()
    page.fill("#token", stack.admin_token)
    page.click("#use-token")
    expect(actions).to_be_visible()
    page.click('[data-action="force-open"]')
    expect(page.locator('[data-breaker="storage"] [data-field="state"]')).to_have_text(
        "FORCED_OPEN", timeout=2000
    )
    page.click('[data-action="close"]')
    expect(page.locator('[data-breaker="storage"] [data-field="state"]')).to_have_text(
        "CLOSED", timeout=2000
    )


def test_an_open_episode_of_200_ms_still_reaches_the_timeline(stack: Stack, page: Page) -> None:
    """Snapshots come once a second; the transitions are pushed as they happen."""
    from playwright.sync_api import expect

    page.goto(f"{stack.resource.url}/dashboard")
    expect(page.locator('[data-breaker="storage"] [data-field="state"]')).to_have_text("CLOSED")
    url = f"{stack.resource.url}/admin/breakers/storage"
    stack.http.post(f"{url}/force-open", headers=stack.admin_headers).raise_for_status()
    page.wait_for_timeout(200)  # the episode's length, not a wait for a condition
    stack.http.post(f"{url}/close", headers=stack.admin_headers).raise_for_status()
    timeline = page.locator('[data-breaker="storage"] [data-field="transitions"] li')
    expect(timeline.nth(0)).to_contain_text("FORCED_OPEN → CLOSED", timeout=1000)
    expect(timeline.nth(1)).to_contain_text("CLOSED → FORCED_OPEN")
