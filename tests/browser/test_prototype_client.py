"""A page written for the prototype, served from another origin, sees data (issue 9)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from support.server import LiveService, live_service

from cotiza.settings import Settings

PAGE = (Path(__file__).parent / "pages" / "prototype_client.html").read_bytes()

pytestmark = pytest.mark.browser


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[int]:
    """A second origin: a tiny HTTP server on its own port that serves only our page."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(PAGE)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + PAGE)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def open_client(browser: Browser, page_port: int, live: LiveService) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    # localhost and 127.0.0.1 are different origins, and so are different ports.
    await page.goto(f"http://localhost:{page_port}/client.html?api={live.base}")
    return page


async def test_prototype_page_from_another_origin_sees_data(
    browser: Browser, make_settings: Callable[..., Settings]
) -> None:
    """With ALLOWED_ORIGINS naming the page's origin, started, method, client_id_result,
    the pong's action, a broadcast tick and dashboard rows all reach the page."""
    async with page_server() as port:
        settings = make_settings(allowed_origins=f"http://localhost:{port}")
        async with live_service(settings) as live:
            page = await open_client(browser, port, live)
            await expect(page.locator("#started")).to_have_text("Activo", timeout=15_000)
            await expect(page.locator("#method")).to_have_text("aggregates")
            await expect(page.locator("#client")).to_have_text("default")
            await expect(page.locator("#pong")).to_have_text("pong")
            # The page shows the first tick broadcast to it: any instrument of the feed.
            await expect(page.locator("#tick")).not_to_have_text("-", timeout=15_000)
            assert await page.locator("#tick").text_content() in live.services.cache.symbols()
            rows = re.compile(r"^[1-9]\d* aggregates$")
            await expect(page.locator("#rows")).to_have_text(rows, timeout=15_000)
            await expect(page.locator("#errors")).to_have_text("")
            await page.context.close()


async def test_without_the_setting_the_other_origin_is_refused(
    browser: Browser, make_settings: Callable[..., Settings]
) -> None:
    """By default (same host only) the same page gets nothing, and the service says why."""
    async with page_server() as port, live_service(make_settings()) as live:
        page = await open_client(browser, port, live)
        await expect(page.locator("#errors")).to_contain_text("websocket", timeout=15_000)
        await expect(page.locator("#errors")).to_contain_text("status")
        await expect(page.locator("#started")).to_have_text("-")
        await page.context.close()
        async with live.http() as http:
            refused = (await http.get("/health/detailed")).json()["origins"]["refused"]
        assert f"http://localhost:{port}" in {r["origin"] for r in refused}


async def test_ws_test_console_talks_to_the_service(browser: Browser, service: LiveService) -> None:
    """/ws-test connects, sends the ping preset and shows the pong; it speaks Spanish first."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{service.base}/ws-test")
    await expect(page.locator("h1")).to_have_text("Consola WebSocket")
    await page.locator("#open").click()
    await expect(page.locator("#state")).to_have_text("conectado", timeout=10_000)
    await page.locator("#sendbtn").click()
    await expect(page.locator("#log")).to_contain_text('"action":"pong"', timeout=10_000)
    await page.locator("#lang").click()
    await expect(page.locator("h1")).to_have_text("WebSocket console")
    await expect(page.locator("#state")).to_have_text("connected")
    await context.close()
