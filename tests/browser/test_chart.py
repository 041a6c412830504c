"""The ratio chart a trader can use: ranges, zoom and pan, crosshair, gaps, bands, exports."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from browser_harness import ARTIFACTS, OpenDashboard
from pagekit import (
    csv_rows,
    download_bytes,
    open_chart,
    pair_with_most_history,
    wait_live,
)
from playwright.async_api import Locator, Page, expect
from support.server import live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

BA = ZoneInfo("America/Argentina/Buenos_Aires")


def cut_gap(database: Path, pair_id: int, start: float, end: float) -> int:
    """Delete a pair's samples in [start, end): an outage in its history."""
    with sqlite3.connect(database) as conn:
        cursor = conn.execute(
            "DELETE FROM ratio_samples WHERE pair_id = ? AND asof >= ? AND asof < ?",
            (pair_id, start, end),
        )
        return cursor.rowcount


async def view(chart: Locator) -> tuple[float, float]:
    return (
        float(await chart.get_attribute("data-view-from") or 0),
        float(await chart.get_attribute("data-view-to") or 0),
    )


async def wait_view(page: Page, predicate: str, arg: Any = None) -> None:
    """Wait until ``predicate(from, to, arg)`` holds for the chart's visible range."""
    await page.wait_for_function(
        f"""(arg) => {{
            const d = document.querySelector('[data-testid="ratio-chart"]').dataset;
            return ((from, to, arg) => {predicate})(Number(d.viewFrom), Number(d.viewTo), arg);
        }}""",
        arg=arg,
    )


async def test_chart_ranges_zoom_pan_crosshair_gaps_bands_and_exports(
    make_settings: Callable[..., Settings], open_dashboard: OpenDashboard, tmp_path: Path
) -> None:
    """Gaps stay open with separators, bands state their window, zoom/pan/custom/reset work."""
    settings = make_settings()
    async with live_service(settings) as live:
        pair = await pair_with_most_history(live)
    # The outage is cut while the service is down, so nothing else writes to the file;
    # the restarted service keeps that history (its demo backfill skips such pairs).
    now = time.time()
    assert cut_gap(tmp_path / "cotiza.db", pair["id"], now - 10 * 3600, now - 6 * 3600) > 0
    async with live_service(settings) as live:
        page = (await open_dashboard(live, width=1366, height=900)).page
        await wait_live(page)
        chart = await open_chart(page, pair["id"])
        legend = page.get_by_test_id("chart-band-legend")

        await expect(chart).to_have_attribute("data-band-window", "7200")
        await expect(legend).to_have_text("Bandas ±1,5\u03c3 (ventana 2 h)")
        assert int(await chart.get_attribute("data-gaps") or 0) >= 1
        assert int(await chart.get_attribute("data-separators") or 0) >= 1
        ARTIFACTS.mkdir(exist_ok=True)
        await page.get_by_test_id("chart-panel").screenshot(path=str(ARTIFACTS / "chart-gap.png"))
        for key, window, text in (("1w", "86400", "1 día"), ("1m", "604800", "7 días")):
            await page.get_by_test_id(f"chart-range-{key}").click()
            await expect(chart).to_have_attribute("data-band-window", window)
            await expect(legend).to_contain_text(f"(ventana {text})")
        await page.get_by_test_id("chart-range-1d").click()
        await expect(chart).to_have_attribute("data-band-window", "7200")
        start_from, start_to = await view(chart)
        assert start_to - start_from == pytest.approx(86400, abs=5)

        box = await chart.bounding_box()
        assert box
        centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.move(*centre)
        for _ in range(6):
            await page.mouse.wheel(0, -400)
        await wait_view(page, "to - from < 0.3 * 86400")
        await expect(page.locator('[data-range][aria-pressed="true"]')).to_have_count(0)
        # Zoomed in, the page fetches finer buckets than the day view's 5 minutes.
        await page.wait_for_function(
            "Number(document.querySelector('[data-testid=\"ratio-chart\"]').dataset.resolution)"
            " < 300"
        )
        zoom_from, zoom_to = await view(chart)
        await page.mouse.move(*centre)
        await page.mouse.down()
        await page.mouse.move(centre[0] + 250, centre[1], steps=5)
        await page.mouse.up()
        await wait_view(page, "from < arg - 60", zoom_from)
        pan_from, pan_to = await view(chart)
        assert pan_to - pan_from == pytest.approx(zoom_to - zoom_from, rel=0.01)

        await expect(chart).to_have_attribute("data-pending", "false")
        await page.mouse.move(centre[0] - 60, centre[1])
        await page.mouse.move(centre[0] - 40, centre[1], steps=3)
        readout = page.get_by_test_id("chart-readout")
        await expect(readout).to_contain_text("Ratio medio")
        await expect(readout).to_contain_text("hora BA")
        await expect(page.get_by_test_id("chart-tip")).to_be_visible()
        for series in ("bid", "ask", "last"):
            await page.get_by_test_id(f"chart-show-{series}").check()
        await expect(chart).to_have_attribute("data-shown", "bid ask last bands")
        await page.mouse.move(centre[0] - 40, centre[1], steps=3)
        await expect(readout).to_contain_text("Ratio compra")
        await expect(readout).to_contain_text("Ratio venta")
        # Inside the outage the crosshair says there is no data, not a neighbour's value.
        gap = (time.time() - 11 * 3600, time.time() - 5 * 3600)
        await page.get_by_test_id("chart-from").fill(
            dt.datetime.fromtimestamp(gap[0], BA).strftime("%Y-%m-%dT%H:%M")
        )
        await page.get_by_test_id("chart-to").fill(
            dt.datetime.fromtimestamp(gap[1], BA).strftime("%Y-%m-%dT%H:%M")
        )
        await page.get_by_test_id("chart-apply").click()
        await expect(chart).to_have_attribute("data-pending", "false")
        await page.mouse.move(centre[0] - 60, centre[1])
        await page.mouse.move(centre[0], centre[1], steps=3)
        await expect(readout).to_contain_text("sin datos (hueco)")

        yesterday = dt.datetime.now(BA) - dt.timedelta(days=1)
        begin = yesterday.replace(hour=10, minute=0, second=0, microsecond=0)
        await page.get_by_test_id("chart-from").fill(begin.strftime("%Y-%m-%dT%H:%M"))
        await page.get_by_test_id("chart-to").fill(begin.strftime("%Y-%m-%dT14:%M"))
        await page.get_by_test_id("chart-apply").click()
        await wait_view(page, "Math.abs(from - arg) < 1", begin.timestamp())
        await wait_view(page, "Math.abs(to - from - 4 * 3600) < 1")
        await expect(chart).to_have_attribute("data-resolution", "30")

        name, content = await download_bytes(page, "chart-csv")
        assert name.endswith(".csv")
        header, *rows = csv_rows(content)
        assert header[:3] == ["Hora", "epoch", "Ratio medio"]
        assert len(rows) > 100
        epochs = [float(row[1]) for row in rows]
        assert begin.timestamp() <= min(epochs) and max(epochs) <= begin.timestamp() + 4 * 3600
        assert rows[0][0].endswith("-03:00") and "," in rows[0][2]
        name, content = await download_bytes(page, "chart-png")
        assert name.endswith(".png") and content.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(content) > 5000

        await page.get_by_test_id("chart-reset").click()
        await expect(page.get_by_test_id("chart-range-1d")).to_have_attribute(
            "aria-pressed", "true"
        )
        await wait_view(page, "Math.abs(to - from - 86400) < 5 && to > arg", time.time() - 60)
