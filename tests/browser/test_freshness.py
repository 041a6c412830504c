"""Stale data never looks live: frozen servers, stopped feeds and long outages, in Chromium."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from browser_harness import OpenDashboard
from pagekit import save_screenshot, service_process, wait_live
from playwright.async_api import Browser, Page, expect
from support.ports import free_port
from support.server import LiveService, live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

ALL_ROWS_STALE = """() => {
  const rows = [...document.querySelectorAll('[data-testid="quote-row"]')];
  return rows.length > 0 && rows.every((row) => row.dataset.stale === "true");
}"""


async def favicon(page: Page) -> str:
    return await page.locator('link[rel="icon"]').get_attribute("href") or ""


async def test_frozen_server_turns_the_page_frozen_within_twelve_seconds(
    tmp_path: Path, browser: Browser
) -> None:
    """SIGSTOP on the service: banner, greyed rows, faded chart, title, favicon and reset status."""
    with service_process(tmp_path) as (proc, port):
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/dashboard")
        await wait_live(page)
        await expect(page.get_by_test_id("feed-state")).to_have_attribute("data-state", "running")
        await expect(page.get_by_test_id("market-state")).to_have_text("abierto")
        await page.get_by_test_id("ratio-row").first.click()
        await expect(page.get_by_test_id("chart-panel")).to_be_visible()
        live_icon = await favicon(page)
        assert await page.title() == "cotiza"

        os.kill(proc.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        banner = page.get_by_test_id("stale-banner")
        await expect(banner).to_be_visible(timeout=13_000)
        assert time.monotonic() - frozen_at <= 12.5
        text = await banner.inner_text()
        assert re.search(r"Datos congelados desde \d\d:\d\d:\d\d \(hora BA\)", text), text
        assert "el servicio no responde" in text
        state = page.get_by_test_id("connection-state")
        await expect(state).to_have_attribute("data-state", "frozen")
        await expect(state).not_to_have_text(re.compile("en vivo"))
        assert "congelados" in await page.title()
        assert await favicon(page) != live_icon
        await page.wait_for_function(ALL_ROWS_STALE, timeout=5_000)
        opacity = await page.locator(".chart-wrap").evaluate("(el) => getComputedStyle(el).opacity")
        assert float(opacity) < 1
        # The status poll fails against a stopped server: Feed and Mercado stop claiming health.
        await expect(page.get_by_test_id("feed-state")).to_have_text("—", timeout=12_000)
        await expect(page.get_by_test_id("market-state")).to_have_text("—")
        await save_screenshot(page, "frozen.png")

        os.kill(proc.pid, signal.SIGCONT)
        await expect(state).to_have_attribute("data-state", "live", timeout=25_000)
        await expect(banner).to_be_hidden()
        assert await page.title() == "cotiza"
        await context.close()


async def test_feed_stopped_by_operator_is_not_live(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """A feed stopped on request shows "conectado · feed detenido", the banner and grey rows."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    async with service.http() as client:
        assert (await client.post("/cotizaciones/detener")).is_success
    state = page.get_by_test_id("connection-state")
    await expect(state).to_have_text("conectado · feed detenido")
    banner = page.get_by_test_id("stale-banner")
    await expect(banner).to_contain_text("el feed está detenido")
    await expect(banner).to_contain_text("(hora BA)")
    assert "congelados" in await page.title()
    await page.wait_for_function(ALL_ROWS_STALE, timeout=15_000)
    async with service.http() as client:
        assert (await client.post("/cotizaciones/iniciar")).is_success
    await expect(state).to_have_text("en vivo")
    await expect(banner).to_be_hidden()
    await page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="quote-row"]')]
            .some((row) => row.dataset.stale === "false")"""
    )


async def test_reconnects_as_soon_as_the_service_answers_after_a_long_outage(
    make_settings: Callable[..., Settings], open_dashboard: OpenDashboard
) -> None:
    """After a long outage the backoff is cut short once the status poll sees the service."""
    port = free_port()
    settings = make_settings()
    async with live_service(settings, port=port) as first:
        page = (await open_dashboard(first)).page
        await wait_live(page)
    state = page.get_by_test_id("connection-state")
    # Let the backoff grow until the next attempt is several seconds away.
    waiting = re.compile(r"reconectando en ([6-9]|\d\d+) s")
    await expect(state).to_have_text(waiting, timeout=45_000)
    countdown = int(re.findall(r"\d+", await state.inner_text())[0])
    async with live_service(settings, port=port):
        restarted = time.monotonic()
        await expect(state).to_have_attribute("data-state", "live", timeout=countdown * 1000)
        took = time.monotonic() - restarted
        assert took < countdown - 1.5, (took, countdown)
        await expect(page.get_by_test_id("stale-banner")).to_be_hidden()
