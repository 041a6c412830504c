"""With API_TOKEN set: one clear prompt, tokens checked before saving, confirmed feed control."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pagekit import save_screenshot, wait_live
from playwright.async_api import Browser, Page, expect
from support.server import live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.browser

expect.set_options(timeout=15_000)

TOKEN = "s3cret-token-4d2"

STORED = """() => [sessionStorage.getItem("cotiza.token"), localStorage.getItem("cotiza.token")]"""


async def stored(page: Page) -> list[str | None]:
    result: list[str | None] = await page.evaluate(STORED)
    return result


async def test_token_prompt_replaces_the_tables_and_checks_at_once(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """No token: a prompt instead of "Esperando cotizaciones…"; wrong ✗ unsaved; right ✓ saved."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        page = await context.new_page()
        await page.goto(f"{live.base}/dashboard")
        prompt = page.get_by_test_id("auth-prompt")
        await expect(prompt).to_be_visible()
        await expect(prompt).to_contain_text("Se necesita un token")
        await expect(page.get_by_test_id("auth-input")).to_be_focused()
        await expect(page.get_by_test_id("quotes-section")).to_be_hidden()
        await expect(page.get_by_test_id("ratios-section")).to_be_hidden()
        await expect(page.get_by_test_id("connection-state")).to_have_text("token requerido")
        await save_screenshot(page, "token-prompt.png")

        await page.get_by_test_id("auth-input").fill("not-the-token")
        await page.get_by_test_id("auth-save").click()
        check = page.get_by_test_id("auth-check")
        await expect(check).to_have_text("✗ Token incorrecto: no se guardó.")
        await expect(check).to_have_attribute("data-state", "invalid")
        assert await stored(page) == [None, None]
        await expect(prompt).to_be_visible()

        await page.get_by_test_id("auth-input").fill(TOKEN)
        await page.get_by_test_id("auth-remember").check()
        await page.get_by_test_id("auth-save").click()
        await expect(prompt).to_be_hidden()
        await wait_live(page)
        assert await stored(page) == [None, TOKEN]
        await expect(page.get_by_test_id("feed-buttons")).to_be_visible()
        await expect(page.get_by_test_id("controls-hint")).to_have_text(
            "Token verificado, recordado en este equipo."
        )

        # "Recordar en este equipo": a new tab does not ask again.
        second = await context.new_page()
        await second.goto(f"{live.base}/dashboard")
        await wait_live(second)
        await expect(second.get_by_test_id("auth-prompt")).to_be_hidden()
        await context.close()


async def test_token_for_this_tab_only_and_a_stale_stored_token_is_dropped(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """Without "recordar" the token stays in the tab; a refused stored token is dropped."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        context = await browser.new_context()
        await context.add_init_script(
            "if (!sessionStorage.getItem('seeded')) {"
            " sessionStorage.setItem('seeded', '1');"
            " localStorage.setItem('cotiza.token', 'revoked-token'); }"
        )
        page = await context.new_page()
        await page.goto(f"{live.base}/dashboard")
        await expect(page.get_by_test_id("auth-prompt")).to_be_visible()
        assert await stored(page) == [None, None]
        await page.get_by_test_id("auth-input").fill(TOKEN)
        await page.get_by_test_id("auth-save").click()
        await wait_live(page)
        assert await stored(page) == [TOKEN, None]
        await context.close()


async def test_feed_stop_and_restart_ask_first_and_answer_in_spanish(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """Stop and restart open a confirmation; cancel changes nothing; replies are in Spanish."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        context = await browser.new_context(viewport={"width": 1366, "height": 800})
        await context.add_init_script(f"sessionStorage.setItem('cotiza.token', '{TOKEN}')")
        page = await context.new_page()
        await page.goto(f"{live.base}/dashboard")
        await wait_live(page)
        dialog = page.get_by_test_id("confirm-dialog")
        result = page.get_by_test_id("control-result")
        feed = page.get_by_test_id("feed-state")

        await page.get_by_test_id("feed-stop").click()
        await expect(dialog).to_be_visible()
        await expect(page.get_by_test_id("confirm-text")).to_contain_text("¿Detener el feed?")
        await expect(page.get_by_test_id("confirm-no")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(result).to_have_text("Cancelado: no se cambió nada.")
        assert live.services.feed.status()["state"] == "running"

        await page.get_by_test_id("feed-stop").click()
        await page.get_by_test_id("confirm-yes").click()
        await expect(result).to_have_text("Listo: el feed se detuvo.")
        await expect(feed).to_have_attribute("data-state", "stopped")
        await expect(page.get_by_test_id("connection-state")).to_have_text(
            "conectado · feed detenido"
        )

        await page.get_by_test_id("feed-start").click()
        await expect(result).to_have_text("Listo: el feed se inició.")
        await expect(feed).to_have_attribute("data-state", "running")

        await page.get_by_test_id("feed-restart").click()
        await expect(page.get_by_test_id("confirm-text")).to_contain_text("¿Reiniciar el feed?")
        await page.get_by_test_id("confirm-yes").click()
        await expect(result).to_have_text("Listo: el feed se reinició.")

        await page.get_by_test_id("lang-switch").click()
        await page.get_by_test_id("feed-start").click()
        await expect(result).to_have_text("The feed was already running.")
        await context.close()
