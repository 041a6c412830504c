"""Fixtures: a real service, and Debian's Chromium driven by Playwright's async API.

The async API runs in the test's event loop, next to the uvicorn server it talks to; the
sync API would block that loop and with it the server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, OpenDashboard, OpenPage
from playwright.async_api import Browser, async_playwright
from support.server import LiveService
from support.settings import settings_factory

from cotiza.settings import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """The generic ``make_settings`` with two days of demo history for the charts."""
    return settings_factory(tmp_path, demo_history_days=2)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def open_dashboard(browser: Browser) -> OpenDashboard:
    """Open /dashboard of a live service in a fresh browser context (own storage)."""

    async def open_page(live: LiveService, width: int = 1400, height: int = 900) -> OpenPage:
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        opened = OpenPage(page)
        page.on("console", opened.record_console)
        page.on("pageerror", opened.record_exception)
        await page.goto(f"{live.base}/dashboard")
        return opened

    return open_page
