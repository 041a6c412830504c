"""The web dashboard at /dashboard, driven in Debian's Chromium against a real service."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from browser_harness import OpenDashboard
from pagekit import (
    DASHBOARD_HEADERS,
    pair_with_most_history,
    save_screenshot,
    wait_live,
    wait_prices_change,
)
from playwright.async_api import expect
from support.ports import free_port
from support.server import LiveService, live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)


async def test_page_loads_live_without_console_errors(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """The page connects, fills every panel and reports no console error or exception."""
    opened = await open_dashboard(service)
    page = opened.page
    await wait_live(page)
    await expect(page.get_by_test_id("connection-state")).to_have_text("en vivo")
    await expect(page.get_by_test_id("ratio-row").first).to_be_visible()
    await expect(page.get_by_test_id("dashboard-row").first).to_be_visible()
    await expect(page.get_by_test_id("health-check").first).to_be_visible()
    await expect(page.get_by_test_id("feed-state")).to_have_attribute("data-state", "running")
    await expect(page.get_by_test_id("market-state")).to_have_text("abierto")
    await expect(page.get_by_test_id("health-ws-connections")).to_have_text("1")
    await expect(page.get_by_test_id("health-dashboard-subscribers")).to_have_text("1")
    await expect(page.get_by_test_id("health-loop-lag")).to_contain_text("ms")
    await expect(page.get_by_test_id("feed-buttons")).to_be_hidden()
    await wait_prices_change(page)
    assert opened.errors == []


async def test_quotes_update_and_filter(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """Prices change within seconds, and the filter box narrows the rows to matches."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    await wait_prices_change(page)
    rows = page.get_by_test_id("quote-row")
    total = await rows.count()
    await page.get_by_test_id("quotes-filter").fill("al30d")
    visible = page.locator('[data-testid="quote-row"]:visible')
    symbols = [await row.get_attribute("data-symbol") for row in await visible.all()]
    assert symbols and all("AL30D" in (symbol or "") for symbol in symbols)
    await expect(page.get_by_test_id("quotes-count")).to_have_text(f"{len(symbols)} de {total}")
    await page.get_by_test_id("quotes-filter").fill("")
    await expect(visible).to_have_count(total)


async def test_dashboard_table_fills(service: LiveService, open_dashboard: OpenDashboard) -> None:
    """The §5 table shows every pair, coloured % differences, and "—" for nulls."""
    page = (await open_dashboard(service)).page
    async with service.http() as client:
        pairs = (await client.get("/api/ratios/pairs", params={"active": "true"})).json()
    rows = page.get_by_test_id("dashboard-row")
    await expect(rows).to_have_count(pairs["count"])
    last = page.locator('[data-testid="dashboard-row"] td[data-col="ultimo_ratio_operado"]')
    await expect(last.filter(has_text=re.compile(r"\d")).first).to_be_visible()
    coloured = page.locator(
        '[data-testid="dashboard-row"] .dif.pos, [data-testid="dashboard-row"] .dif.neg'
    )
    await expect(coloured.first).to_be_visible()
    headers = await page.locator('[data-testid="dashboard-table"] thead th').all_inner_texts()
    assert [h.strip() for h in headers] == DASHBOARD_HEADERS
    async with service.http() as client:
        data = (await client.get("/api/ratios/dashboard")).json()["data"]
    for row in data:
        if row["promedio_dia_anterior"] is None:
            cell = page.locator(
                f'[data-testid="dashboard-row"][data-pair-id="{row["pair_id"]}"]'
                ' td[data-col="promedio_dia_anterior"] .value'
            )
            await expect(cell).to_have_text("—")


async def test_ratio_chart_opens_and_follows_live_values(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """A click on a ratio draws its history with bands, then extends it with live pushes."""
    pair = await pair_with_most_history(service)
    page = (await open_dashboard(service)).page
    await wait_live(page)
    await page.locator(f'[data-testid="ratio-row"][data-pair-id="{pair["id"]}"]').click()
    panel = page.get_by_test_id("chart-panel")
    await expect(panel).to_be_visible()
    await expect(panel).to_have_attribute("data-state", "ready")
    legs = "/".join(pair[leg].split(" - ")[2] for leg in ("base", "quote"))
    await expect(page.get_by_test_id("chart-title")).to_contain_text(legs)
    chart = page.get_by_test_id("ratio-chart")
    await expect(chart).to_have_attribute("data-ready", "true")
    await expect(chart.locator("canvas")).to_be_visible()
    assert int(await chart.get_attribute("data-points") or 0) > 1
    first_t = float(await chart.get_attribute("data-last-t") or 0)
    await page.wait_for_function(
        """(first) => Number(document.querySelector('[data-testid="ratio-chart"]')
            ?.dataset.lastT) > first""",
        arg=first_t,
    )
    await expect(page.get_by_test_id("dashboard-row").first).to_be_visible()
    await expect(page.get_by_test_id("health-check").first).to_be_visible()
    await save_screenshot(page, "dashboard.png")
    await page.get_by_test_id("chart-close").click()
    await expect(panel).to_be_hidden()


async def test_reconnects_and_resubscribes_after_service_restart(
    make_settings: Callable[..., Settings], open_dashboard: OpenDashboard
) -> None:
    """Stopping the service shows "reconectando"; a new one on the port brings data back."""
    port = free_port()
    settings = make_settings()
    state = None
    async with live_service(settings, port=port) as first:
        page = (await open_dashboard(first)).page
        await wait_live(page)
        await page.evaluate("window.sameDocument = true")
        state = page.get_by_test_id("connection-state")
        await first.stop()
        await expect(state).to_have_attribute("data-state", "reconnecting")
        await expect(state).to_contain_text("reconectando")
    async with live_service(settings, port=port) as second:
        await expect(state).to_have_attribute("data-state", "live", timeout=30_000)
        await wait_prices_change(page)
        assert await page.evaluate("window.sameDocument") is True
        async with second.http() as client:
            status = (await client.get("/cotizaciones/websocket_status")).json()
        (connection,) = status["connections"]
        assert connection["instruments"]
        assert connection["ratio_pairs"] == "all"
        assert connection["dashboard"] is True


async def test_language_switch_persists(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """The switch turns Spanish headings into English, and the choice survives a reload."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    heading = page.get_by_test_id("quotes-heading")
    await expect(heading).to_have_text("Cotizaciones")
    await page.get_by_test_id("lang-switch").click()
    await expect(heading).to_have_text("Quotes")
    await expect(page.get_by_test_id("dashboard-heading")).to_have_text("Ratio dashboard")
    await expect(page.get_by_test_id("connection-state")).to_have_text("live")
    assert await page.evaluate("document.documentElement.lang") == "en"
    await page.reload()
    await expect(heading).to_have_text("Quotes")
    await page.get_by_test_id("lang-switch").click()
    await expect(heading).to_have_text("Cotizaciones")


async def test_feed_controls_need_a_token(
    make_settings: Callable[..., Settings], open_dashboard: OpenDashboard
) -> None:
    """Without a token the page asks for one; with it, it connects and stops/starts the feed."""
    async with live_service(make_settings(api_token="s3cret-token")) as live:
        page = (await open_dashboard(live)).page
        state = page.get_by_test_id("connection-state")
        await expect(state).to_have_attribute("data-state", "unauthorized")
        await expect(page.get_by_test_id("feed-buttons")).to_be_hidden()
        await page.get_by_test_id("token-input").fill("s3cret-token")
        await page.get_by_test_id("token-save").click()
        await wait_live(page)
        await page.get_by_test_id("feed-stop").click()
        await page.get_by_test_id("confirm-yes").click()
        await expect(page.get_by_test_id("feed-state")).to_have_attribute("data-state", "stopped")
        await expect(page.get_by_test_id("control-result")).to_have_text(
            "Listo: el feed se detuvo."
        )
        await page.get_by_test_id("feed-start").click()
        await expect(page.get_by_test_id("feed-state")).to_have_attribute("data-state", "running")
        await page.reload()
        await wait_live(page)
        await expect(page.get_by_test_id("feed-buttons")).to_be_visible()
        await page.get_by_test_id("token-forget").click()
        await expect(page.get_by_test_id("feed-buttons")).to_be_hidden()


async def test_backoff_delay_doubles_with_jitter(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """The reconnect delay doubles per attempt up to its cap, drawn from the upper half."""
    page = (await open_dashboard(service)).page
    bounds = await page.evaluate(
        """async () => {
            const { backoffDelay } = await import("/static/connection.js");
            return [0, 1, 2, 3, 10, 40].map((attempt) => [
                backoffDelay(attempt, 500, 30000, () => 0),
                backoffDelay(attempt, 500, 30000, () => 1),
            ]);
        }"""
    )
    assert bounds == [
        [250, 500],
        [500, 1000],
        [1000, 2000],
        [2000, 4000],
        [15000, 30000],
        [15000, 30000],
    ]


async def test_offline_then_back_online(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """Losing the network shows "sin conexión"; getting it back reconnects at once."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    state = page.get_by_test_id("connection-state")
    await page.context.set_offline(True)
    await expect(state).to_have_attribute("data-state", "offline")
    await expect(state).to_have_text("sin conexión")
    await page.context.set_offline(False)
    await expect(state).to_have_attribute("data-state", "live")
    await wait_prices_change(page)
