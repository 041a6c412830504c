"""/docs and /redoc work offline: every asset they load is served by cotiza itself."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Route
from support.server import LiveService

pytestmark = pytest.mark.browser

URL_IN_SCRIPT = re.compile(r"""["'](https?:)?//[^"']+["']""")


class Links(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
async def test_the_docs_pages_reference_only_local_assets(service: LiveService, path: str) -> None:
    """No CDN: each referenced URL is on the service and answers 200 with content."""
    async with httpx.AsyncClient(base_url=service.base, timeout=10) as http:
        page = await http.get(path)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        links = Links()
        links.feed(page.text)
        assert links.urls, "the page references no assets"
        assert URL_IN_SCRIPT.findall(page.text) == []  # no absolute URL in inline scripts
        for url in links.urls:
            absolute = urljoin(f"{service.base}{path}", url)
            assert urlsplit(absolute).netloc == urlsplit(service.base).netloc, url
            asset = await http.get(absolute)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url  # a real file, not a stub
        assert (await http.get("/openapi.json")).status_code == 200


async def test_swagger_ui_renders_with_the_network_cut_off(
    service: LiveService, browser: Browser
) -> None:
    """In Chromium with every other host refused, /docs shows the API's operations."""
    context = await browser.new_context()
    foreign: list[str] = []

    async def only_local(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(service.base).netloc:
            await route.continue_()
        else:
            foreign.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_local)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{service.base}/docs")
    await page.wait_for_selector(".opblock", timeout=20_000)
    assert await page.locator(".opblock").count() > 10
    assert await page.locator(".swagger-ui .title").first.inner_text() != ""
    assert foreign == [] and errors == []
    await context.close()
