"""A real phone layout (390 px) and accessibility: axe-core, quiet announcements, contrast."""

from __future__ import annotations

import pytest
from browser_harness import OpenDashboard
from pagekit import (
    open_chart,
    pair_with_most_history,
    save_screenshot,
    serious_violations,
    wait_live,
)
from playwright.async_api import Browser, Page, expect
from support.server import LiveService

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

# Elements that scroll inside the page (a scroll box within the scrolling page).
NESTED_SCROLLERS = """() => [...document.querySelectorAll("body *")].filter((el) => {
  const style = getComputedStyle(el);
  const scrolls = (v) => v === "auto" || v === "scroll";
  return (scrolls(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
      || (scrolls(style.overflowY) && el.scrollHeight > el.clientHeight + 1);
}).map((el) => el.dataset.testid || el.className || el.tagName)"""

# Visible interactive elements smaller than 44 by 44 CSS pixels.
SMALL_TARGETS = """() => [...document.querySelectorAll(
  'button, input, select, a[href], [tabindex="0"], tr.clickable, label.check')]
  .filter((el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return false;
    if (el.matches("label.check input")) return false;  // the label around it is the target
    return box.width < 44 || box.height < 44;
  })
  .map((el) => `${el.tagName} ${el.dataset.testid || el.textContent.trim().slice(0, 20)}`
    + ` ${Math.round(el.getBoundingClientRect().width)}x`
    + `${Math.round(el.getBoundingClientRect().height)}`)"""

CONTRAST = """(el) => {
  const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, c, i) => sum + c * [0.2126, 0.7152, 0.0722][i], 0);
  const style = getComputedStyle(el);
  const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


async def phone(browser: Browser, live: LiveService, scheme: str = "light") -> Page:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    page = await context.new_page()
    await page.goto(f"{live.base}/dashboard")
    await wait_live(page)
    return page


async def pinch(page: Page, x: float, y: float, start: float, end: float) -> None:
    """Two fingers moving apart horizontally around (x, y), through the DevTools protocol."""
    cdp = await page.context.new_cdp_session(page)

    def points(gap: float) -> list[dict[str, float]]:
        return [{"x": x - gap / 2, "y": y, "id": 1}, {"x": x + gap / 2, "y": y, "id": 2}]

    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(start)})
    for step in range(1, 11):
        gap = start + (end - start) * step / 10
        await cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(gap)}
        )
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def test_phone_shows_cards_without_sideways_scroll_and_big_targets(
    service: LiveService, browser: Browser
) -> None:
    """390 px: cards with last, change and bid/offer first; no sideways or nested scroll; 44 px."""
    page = await phone(browser, service)
    await expect(page.get_by_test_id("dashboard-row").first).to_be_visible()
    await expect(page.get_by_test_id("health-check").first).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert await page.evaluate(NESTED_SCROLLERS) == []
    assert await page.evaluate(SMALL_TARGETS) == []

    row = page.get_by_test_id("quote-row").first
    card = await row.bounding_box()
    assert card
    for col in ("last", "change", "bid", "offer"):
        box = await row.locator(f'[data-col="{col}"]').bounding_box()
        assert box and box["x"] + box["width"] <= 390, col
        assert box["y"] < card["y"] + 75, col  # in the card's first two lines
        assert await row.locator(f'[data-col="{col}"]').is_visible()

    sections = {}
    for name in ("quotes", "ratios", "dashboard", "health", "controls"):
        box = await page.get_by_test_id(f"{name}-section").bounding_box()
        assert box, name
        sections[name] = box
    market_end = max(
        sections[n]["y"] + sections[n]["height"] for n in ("quotes", "ratios", "dashboard")
    )
    assert sections["health"]["y"] >= market_end
    assert sections["controls"]["y"] >= sections["health"]["y"] + sections["health"]["height"]
    await save_screenshot(page, "dashboard-phone.png")


async def test_phone_chart_tap_and_pinch(service: LiveService, browser: Browser) -> None:
    """On a phone a tap shows the crosshair's values and a pinch zooms the time axis."""
    pair = await pair_with_most_history(service)
    page = await phone(browser, service, "dark")
    await page.locator(f'[data-testid="ratio-row"][data-pair-id="{pair["id"]}"]').tap()
    chart = page.get_by_test_id("ratio-chart")
    await expect(chart).to_have_attribute("data-ready", "true")
    await expect(chart).to_have_attribute("data-pending", "false")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await chart.scroll_into_view_if_needed()
    box = await chart.bounding_box()
    assert box
    await page.touchscreen.tap(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    await expect(page.get_by_test_id("chart-readout")).to_contain_text("Ratio medio")
    before = await chart.evaluate("(el) => el.dataset.viewTo - el.dataset.viewFrom")
    await pinch(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, 60, 240)
    await page.wait_for_function(
        """(before) => {
            const d = document.querySelector('[data-testid="ratio-chart"]').dataset;
            return d.viewTo - d.viewFrom < before * 0.6;
        }""",
        arg=before,
    )
    assert await page.evaluate(SMALL_TARGETS) == []
    await page.get_by_test_id("chart-panel").screenshot(path="artifacts/chart-phone.png")


@pytest.mark.parametrize("scheme", ["dark", "light"])
async def test_axe_finds_no_serious_or_critical_violations(
    service: LiveService, browser: Browser, scheme: str
) -> None:
    """axe-core, offline, on the page with a chart open: desktop and phone, in each scheme."""
    pair = await pair_with_most_history(service)
    context = await browser.new_context(
        viewport={"width": 1366, "height": 900},
        color_scheme=scheme,  # type: ignore[arg-type]
    )
    page = await context.new_page()
    await page.goto(f"{service.base}/dashboard")
    await wait_live(page)
    await open_chart(page, pair["id"])
    await expect(page.get_by_test_id("health-check").first).to_be_visible()
    assert await serious_violations(page) == []
    pressed = page.locator('[data-range][aria-pressed="true"]')
    assert await pressed.evaluate(CONTRAST) >= 4.5
    await context.close()
    page = await phone(browser, service, scheme)
    await expect(page.get_by_test_id("dashboard-row").first).to_be_visible()
    assert await serious_violations(page) == []


async def test_only_changes_of_state_are_announced(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """The status strip is not a live region; the announcer speaks once per change of state."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    assert await page.get_by_test_id("status-bar").get_attribute("aria-live") is None
    scroll = page.get_by_test_id("quotes-scroll")
    await expect(scroll).to_have_attribute("role", "region")
    await expect(scroll).to_have_attribute("aria-label", "Tabla de cotizaciones, desplazable")
    await expect(scroll).to_have_attribute("tabindex", "0")
    announcer = page.get_by_test_id("announcer")
    await expect(announcer).to_have_text("Datos en vivo.")
    await page.evaluate(
        """() => {
            window.announced = [];
            new MutationObserver(() => window.announced.push(
                document.querySelector('[data-testid="announcer"]').textContent))
              .observe(document.querySelector('[data-testid="announcer"]'),
                       { childList: true, characterData: true, subtree: true });
            window.ageChanges = 0;
            new MutationObserver(() => { window.ageChanges += 1; })
              .observe(document.querySelector('[data-testid="market-clock"]'),
                       { childList: true, characterData: true, subtree: true });
        }"""
    )
    # Three seconds of a live page (the clock ticks): the status strip changed, nothing said.
    await page.wait_for_function("window.ageChanges >= 3")
    assert await page.evaluate("window.announced") == []
    async with service.http() as client:
        assert (await client.post("/cotizaciones/detener")).is_success
    await expect(announcer).to_contain_text("el feed está detenido")
    await page.wait_for_function("window.ageChanges >= 6")
    assert len(await page.evaluate("window.announced")) == 1
