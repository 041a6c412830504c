"""Shared steps of the page tests: waiting for live data, screenshots, finding history."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from browser_harness import ARTIFACTS
from playwright.async_api import Locator, Page, expect
from support.process import service_process as running_service
from support.server import LiveService

ROOT = Path(__file__).resolve().parents[2]

# The text of every price cell; it changes whenever any bid, offer or last moves.
PRICES = """() => [...document.querySelectorAll(
  '[data-testid="quote-row"] td[data-col="bid"],'
  + '[data-testid="quote-row"] td[data-col="offer"],'
  + '[data-testid="quote-row"] td[data-col="last"]'
)].map((cell) => cell.textContent).join("|")"""

DASHBOARD_HEADERS = [
    "Par",
    "Última muestra",
    "Promedio 24 h",
    "Promedio día hábil ant.",
    "Promedio 7 días",
    "Promedio 30 días",
    "Mínimo 30 días",
    "Máximo 30 días",
]


async def wait_live(page: Page) -> None:
    await expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "live")
    await expect(page.get_by_test_id("quote-row").first).to_be_visible()


async def wait_prices_change(page: Page, timeout: float = 10_000) -> None:
    before = await page.evaluate(PRICES)
    await page.wait_for_function(
        f"(before) => ({PRICES})() !== before", arg=before, timeout=timeout
    )


# Scroll to the top until the page stays there for three frames: Chromium lets a smooth
# scroll the page started (opening the chart scrolls it into view) carry on after an
# instant scrollTo, which would leave the page somewhere below the top.
AT_TOP = """() => {
  if (window.scrollY !== 0) {
    window.scrollTo({ top: 0, behavior: "instant" });
    window.__framesAtTop = 0;
    return false;
  }
  window.__framesAtTop = (window.__framesAtTop || 0) + 1;
  return window.__framesAtTop >= 3;
}"""


async def save_screenshot(page: Page, name: str) -> None:
    """Save the whole page under artifacts/, scrolled to the top so the sticky bar sits there."""
    await page.evaluate("window.__framesAtTop = 0")
    await page.wait_for_function(AT_TOP)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def pair_with_most_history(live: LiveService) -> dict[str, Any]:
    async with live.http() as client:
        pairs = (await client.get("/api/ratios/pairs", params={"active": "true"})).json()["pairs"]
        counts = []
        for pair in pairs:
            params = {
                "base": pair["base"],
                "quote": pair["quote"],
                "client_id": pair["client_id"],
                "resolution": "5m",
            }
            history = (await client.get("/api/ratios/history", params=params)).json()
            counts.append((history["count"], pair))
    count, pair = max(counts, key=lambda item: item[0])
    assert count > 1, "no pair has stored history"
    return pair


SUBPROCESS_ENV = {"SIM_TICKS_PER_SECOND": "50", "RATIO_SAMPLE_INTERVAL": "0.5"}
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@contextlib.contextmanager
def service_process(tmp_path: Path, **env: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``support.process.service_process`` with a simulator and sampling the page can see."""
    defaults = {"SIM_TICKS_PER_SECOND": "50", "RATIO_SAMPLE_INTERVAL": "0.5"}
    with running_service(tmp_path, **{**defaults, **env}) as started:
        yield started


async def open_chart(page: Page, pair_id: int) -> Locator:
    """Click a ratio row and wait until its chart has drawn data; returns the chart host."""
    await page.locator(f'[data-testid="ratio-row"][data-pair-id="{pair_id}"]').click()
    await expect(page.get_by_test_id("chart-panel")).to_have_attribute("data-state", "ready")
    chart = page.get_by_test_id("ratio-chart")
    await expect(chart).to_have_attribute("data-ready", "true")
    return chart


async def download_bytes(page: Page, testid: str) -> tuple[str, bytes]:
    """Click a download button; return the suggested file name and the file's bytes."""
    async with page.expect_download() as info:
        await page.get_by_test_id(testid).click()
    download = await info.value
    path = await download.path()
    content = await asyncio.to_thread(Path(path).read_bytes)
    return download.suggested_filename, content


def csv_rows(content: bytes, separator: str = ";") -> list[list[str]]:
    """Parse a CSV download (UTF-8 with a byte-order mark)."""
    text = content.decode("utf-8")
    assert text.startswith("\ufeff"), "CSV without a byte-order mark"
    return list(csv.reader(io.StringIO(text[1:]), delimiter=separator))


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core (vendored, offline) on the page as it is: serious and critical violations."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]
