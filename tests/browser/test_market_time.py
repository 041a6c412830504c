"""Every time on the page is the market's (Buenos Aires), labelled, even in a UTC browser."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from pagekit import open_chart, pair_with_most_history, wait_live
from playwright.async_api import Browser, expect
from support.server import LiveService

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

BA = ZoneInfo("America/Argentina/Buenos_Aires")


def ba_minutes(spread: int = 2) -> set[str]:
    """HH:MM in Buenos Aires now, give or take ``spread`` minutes (tests cross minute ticks)."""
    now = dt.datetime.now(BA)
    return {(now + dt.timedelta(minutes=m)).strftime("%H:%M") for m in range(-spread, spread + 1)}


def has_ba_time(text: str) -> bool:
    return any(minute in text for minute in ba_minutes())


async def test_times_are_market_time_in_a_utc_browser(
    service: LiveService, browser: Browser
) -> None:
    """Clock, tables, tooltips, chart axis, readout and range inputs use BA time, labelled."""
    assert not has_ba_time(dt.datetime.now(dt.UTC).strftime("%H:%M")), "UTC must differ from BA"
    pair = await pair_with_most_history(service)
    context = await browser.new_context(viewport={"width": 1366, "height": 800}, timezone_id="UTC")
    page = await context.new_page()
    await page.goto(f"{service.base}/dashboard")
    await wait_live(page)
    assert await page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == "UTC"

    await expect(page.get_by_test_id("market-clock-label")).to_have_text("hora BA")
    assert has_ba_time(await page.get_by_test_id("market-clock").inner_text())
    updated = page.get_by_test_id("dashboard-updated")
    await expect(updated).to_contain_text("hora BA")
    assert has_ba_time(await updated.inner_text())
    checked = page.get_by_test_id("health-checked-at")
    await expect(checked).to_contain_text("hora BA")
    assert has_ba_time(await checked.inner_text())
    mid = page.locator('[data-testid="ratio-row"] td[data-col="mid_ratio"]').first
    await expect(mid).to_have_attribute("title", re.compile("hora BA"))
    assert has_ba_time(await mid.get_attribute("title") or "")

    chart = await open_chart(page, pair["id"])
    await expect(page.get_by_test_id("chart-zone")).to_have_text("Horarios en hora BA")
    await page.get_by_test_id("chart-range-1h").click()
    await expect(chart).to_have_attribute("data-resolution", "10")
    await expect(chart).to_have_attribute("data-x-ticks", re.compile(r"\d\d:\d\d"))
    ticks = await chart.get_attribute("data-x-ticks") or ""
    labels = re.findall(r"(\d\d):(\d\d)", ticks)
    now = dt.datetime.now(BA)

    def last_at(hour: str, minute: str) -> dt.datetime:
        """The latest BA time at or before now showing this clock time (across midnight)."""
        at = now.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
        return at if at <= now else at - dt.timedelta(days=1)

    latest = max(last_at(hour, minute) for hour, minute in labels)
    # Round ticks over the last hour, in BA time: the newest is within the hour before now.
    assert dt.timedelta(0) <= now - latest <= dt.timedelta(minutes=61), (ticks, now)
    assert all(int(minute) % 5 == 0 for _, minute in labels), ticks
    assert has_ba_time(await page.get_by_test_id("chart-to").input_value())

    await expect(chart).to_have_attribute("data-pending", "false")
    await chart.scroll_into_view_if_needed()  # the mouse only reaches what is in the viewport
    box = await chart.bounding_box()
    assert box
    # Two moves: the crosshair follows mousemove events over a plot drawn with its data.
    await page.mouse.move(box["x"] + box["width"] - 100, box["y"] + box["height"] / 2)
    await page.mouse.move(box["x"] + box["width"] - 90, box["y"] + box["height"] / 2, steps=3)
    readout = page.get_by_test_id("chart-readout")
    await expect(readout).to_contain_text("hora BA")
    assert has_ba_time(await readout.inner_text())
    await expect(page.get_by_test_id("chart-tip")).to_be_visible()
    await context.close()
