"""Shared pieces of the alerts panel's browser tests: the token page, the form, probes."""

from __future__ import annotations

from typing import Any

from pagekit import wait_live
from playwright.async_api import Browser, BrowserContext, Page
from support.server import LiveService

TOKEN = "alerts-panel-token-7c1"
# The length of the list of firings (MAX_FIRINGS in alerts.js).
MAX_FIRINGS = 20

# Interactive elements of the alerts panel smaller than 44 by 44 CSS pixels.
SMALL_TARGETS = """() => [...document.querySelectorAll(
  '[data-testid="alerts-section"] :is(button, input, select, label.check)')]
  .filter((el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) return false;
    if (el.matches("label.check input")) return false;  // the label around it is the target
    return box.width < 44 || box.height < 44;
  })
  .map((el) => `${el.tagName} ${el.dataset.testid || el.textContent.trim().slice(0, 20)}`)"""

# Elements of the panel that scroll inside the page.
NESTED_SCROLLERS = """() => [...document.querySelectorAll('[data-testid="alerts-section"] *')]
  .filter((el) => {
    const style = getComputedStyle(el);
    const scrolls = (v) => v === "auto" || v === "scroll";
    return (scrolls(style.overflowX) && el.scrollWidth > el.clientWidth + 1)
        || (scrolls(style.overflowY) && el.scrollHeight > el.clientHeight + 1);
  }).map((el) => el.dataset.testid || el.className || el.tagName)"""


def trader_name(pair: dict[str, Any]) -> str:
    """The name the page gives a pair: "Dólar MEP" for AL30 against AL30D, else the legs."""
    base, quote = (symbol.split(" - ")[2] for symbol in (pair["base"], pair["quote"]))
    if quote == f"{base}D":
        return "Dólar MEP"
    if quote == f"{base}C":
        return "CCL"
    if base.endswith("D") and quote == f"{base[:-1]}C":
        return "Canje"
    return f"{base}/{quote}"


async def tokened_page(browser: Browser, live: LiveService, **options: Any) -> Page:
    """A page that already keeps the token (as after the prompt), showing live data."""
    context: BrowserContext = await browser.new_context(
        viewport={"width": 1366, "height": 900}, **options
    )
    await context.add_init_script(f"sessionStorage.setItem('cotiza.token', '{TOKEN}')")
    page = await context.new_page()
    await page.goto(f"{live.base}/dashboard")
    await wait_live(page)
    return page


async def active_pair(live: LiveService) -> dict[str, Any]:
    async with live.http() as client:
        pairs = (await client.get("/api/ratios/pairs", params={"active": "true"})).json()
    pair: dict[str, Any] = pairs["pairs"][0]
    return pair


async def create_rule_in_form(
    page: Page, pair_id: int, value: str, cooldown: str = "", note: str = ""
) -> None:
    await page.get_by_test_id("alert-pair").select_option(str(pair_id))
    await page.get_by_test_id("alert-field").select_option("mid_ratio")
    await page.get_by_test_id("alert-op").select_option(">")
    await page.get_by_test_id("alert-value").fill(value)
    await page.get_by_test_id("alert-cooldown").fill(cooldown)
    await page.get_by_test_id("alert-note").fill(note)
    await page.get_by_test_id("alert-create").click()
