"""Tables for daily use: honest column names, trader pair names, sort, filter, watchlist, CSV,
keyboard, and a Spanish page with no English in it."""

from __future__ import annotations

import re

import pytest
from browser_harness import OpenDashboard
from pagekit import csv_rows, download_bytes, wait_live
from playwright.async_api import Page, expect
from support.server import LiveService

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

TRADER_NAMES = {
    ("AL30", "AL30D", "24hs"): "Dólar MEP AL30/AL30D 24hs",
    ("GD30", "GD30D", "24hs"): "Dólar MEP GD30/GD30D 24hs",
    ("AL30", "AL30C", "24hs"): "CCL AL30/AL30C 24hs",
    ("GD30", "GD30C", "24hs"): "CCL GD30/GD30C 24hs",
    ("AL30D", "AL30C", "24hs"): "Canje AL30D/AL30C 24hs",
    ("AL30", "AL30D", "CI"): "Dólar MEP AL30/AL30D CI",
}

# Words and identifiers of the service's English that must not reach the Spanish page.
ENGLISH = [
    "event loop",
    "event_loop",
    "Worker",
    "worker",
    "feed stopped",
    "market closed",
    "running",
    "healthy",
    "pass",
    "timed out",
    "database",
    "process:",
    "writer",
    "Last",
    "Bid",
    "Quotes",
]


# Whether the visible "Último" column is ordered (arg 1 ascending, -1 descending).
SORTED_LAST = """(sign) => {
  const values = [...document.querySelectorAll(
    '[data-testid="quote-row"]:not([hidden]) td[data-col="last"]')]
    .map((cell) => cell.textContent)
    .filter((text) => text !== "—")
    .map((text) => Number(text.replace(/\\./g, "").replace(",", ".")));
  return values.length > 5 && values.every((v, i) => i === 0 || sign * (v - values[i - 1]) >= 0);
}"""


async def header_texts(page: Page, table: str) -> list[str]:
    cells = page.locator(f'[data-testid="{table}"] thead th')
    return [text.strip() for text in await cells.all_inner_texts()]


async def test_columns_are_named_for_what_they_are_and_pairs_as_traders_say(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """No two columns share a name; each says how it is computed; pairs read "Dólar MEP"."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    ratio_headers = await header_texts(page, "ratios-table")
    dashboard_headers = await header_texts(page, "dashboard-table")
    named = ratio_headers[1:] + dashboard_headers[1:]
    assert len(named) == len(set(named)), named
    assert "Promedio rueda" not in dashboard_headers and "Promedio 24 h" in dashboard_headers
    for table in ("quotes-table", "ratios-table", "dashboard-table"):
        for button in await page.locator(f'[data-testid="{table}"] thead button.sort').all():
            assert len(await button.get_attribute("title") or "") > 10
    session = page.locator('[data-testid="dashboard-table"] button[data-sort="promedio_rueda"]')
    await expect(session).to_have_attribute("title", re.compile("últimas 24 horas"))

    async with service.http() as client:
        pairs = (await client.get("/api/ratios/pairs", params={"active": "true"})).json()["pairs"]
    for pair in pairs:
        base, quote = (pair[leg].split(" - ") for leg in ("base", "quote"))
        expected = TRADER_NAMES[(base[2], quote[2], base[3])]
        for table in ("ratio-row", "dashboard-row"):
            head = page.locator(f'[data-testid="{table}"][data-pair-id="{pair["id"]}"] th')
            await expect(head).to_have_text(re.compile(r"\s*".join(expected.split(" "))))


async def test_sort_filter_watchlist_and_csv(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """Headers sort both ways, "al30 ci" finds AL30 CI, the watchlist keeps its order, CSVs."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    await page.get_by_test_id("lang-switch").hover()  # keep the mouse off the table
    last = page.locator('[data-testid="quotes-table"] button[data-sort="last"]')
    await last.click()
    header = page.locator('[data-testid="quotes-table"] th:has(button[data-sort="last"])')
    await expect(header).to_have_attribute("aria-sort", "ascending")
    # Prices move between re-sorts (once a second), so wait for an ordered moment.
    await page.wait_for_function(SORTED_LAST, arg=1)
    await last.click()
    await expect(header).to_have_attribute("aria-sort", "descending")
    await page.wait_for_function(SORTED_LAST, arg=-1)
    await last.click()
    await expect(header).to_have_attribute("aria-sort", "none")

    await page.get_by_test_id("quotes-filter").fill("al30 ci")
    rows = page.locator('[data-testid="quote-row"]:visible')
    symbols = [await row.get_attribute("data-symbol") or "" for row in await rows.all()]
    assert "MERV - XMEV - AL30 - CI" in symbols
    assert all("AL30" in s and s.endswith("CI") for s in symbols), symbols
    name, content = await download_bytes(page, "quotes-csv")
    assert name.startswith("cotiza-cotizaciones-") and name.endswith(".csv")
    header_row, *lines = csv_rows(content)
    assert header_row[:3] == ["Símbolo", "Instrumento", "Cant. compra"]
    assert sorted(line[1] for line in lines) == sorted(symbols)
    await page.get_by_test_id("quotes-filter").fill("")

    picks = ["MERV - XMEV - GD30 - 24hs", "MERV - XMEV - AL30 - CI", "DLR/DIC26"]
    for symbol in picks:
        await page.locator(f'[data-symbol="{symbol}"] [data-testid="watch-toggle"]').click()
    await page.get_by_test_id("quotes-view-watch").click()
    await expect(rows).to_have_count(3)
    assert [await r.get_attribute("data-symbol") for r in await rows.all()] == picks
    await page.locator(f'[data-symbol="{picks[0]}"] [data-testid="watch-down"]').click()
    await expect(rows.first).to_have_attribute("data-symbol", picks[1])
    await page.reload()
    await wait_live(page)
    await page.get_by_test_id("quotes-view-watch").click()
    await expect(rows).to_have_count(3)
    assert [await r.get_attribute("data-symbol") for r in await rows.all()] == [
        picks[1],
        picks[0],
        picks[2],
    ]

    for table, prefix, count in (
        ("ratios-csv", "cotiza-ratios-", "ratio-row"),
        ("dashboard-csv", "cotiza-tablero-", "dashboard-row"),
    ):
        await expect(page.get_by_test_id(count).first).to_be_visible()
        name, content = await download_bytes(page, table)
        assert name.startswith(prefix)
        header_row, *lines = csv_rows(content)
        assert header_row[0] == "Par"
        assert len(lines) == await page.get_by_test_id(count).count()
        assert any(line[0].startswith("Dólar MEP AL30/AL30D") for line in lines)


async def test_keyboard_search_rows_chart_and_focus_return(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """ "/" searches, arrows move along pairs, Enter opens the chart, Esc closes it in place."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    await expect(page.get_by_test_id("ratio-row").nth(2)).to_be_visible()
    await page.keyboard.press("/")
    await expect(page.get_by_test_id("quotes-filter")).to_be_focused()
    await page.keyboard.type("gd30d")
    await expect(page.locator('[data-testid="quote-row"]:visible').first).to_have_attribute(
        "data-symbol", re.compile("GD30D")
    )
    await page.get_by_test_id("ratio-row").first.focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")
    third = page.get_by_test_id("ratio-row").nth(2)
    await expect(third).to_be_focused()
    await page.keyboard.press("ArrowUp")
    second = page.get_by_test_id("ratio-row").nth(1)
    await expect(second).to_be_focused()
    await page.keyboard.press("Enter")
    panel = page.get_by_test_id("chart-panel")
    await expect(panel).to_be_visible()
    await expect(page.get_by_test_id("chart-close")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(second).to_be_focused()


async def test_spanish_page_has_no_english(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """Health check names, worker names, notes and control replies all read in Spanish."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    await expect(page.get_by_test_id("health-check").first).to_be_visible()
    await expect(page.get_by_test_id("dashboard-row").first).to_be_visible()
    async with service.http() as client:
        assert (await client.post("/cotizaciones/detener")).is_success
    await expect(page.locator('[data-check="feed:state"]')).to_contain_text("detenido a pedido")
    text = await page.locator("body").inner_text()
    titles = await page.evaluate(
        "[...document.querySelectorAll('[title]')].map((el) => el.title).join(' | ')"
    )
    for word in ENGLISH:
        assert word not in text, word
    for word in ("event loop", "Worker", "running", "Bid", "Last"):
        assert word not in titles, word
    assert "Retardo del bucle de eventos" in text and "Tarea del tablero" in text
