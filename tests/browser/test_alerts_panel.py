"""The alerts panel: rules created and deleted through the form, live firings, 422s, a11y."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from alertkit import (
    MAX_FIRINGS,
    NESTED_SCROLLERS,
    SMALL_TARGETS,
    TOKEN,
    active_pair,
    create_rule_in_form,
    tokened_page,
    trader_name,
)
from browser_harness import ARTIFACTS, OpenDashboard
from pagekit import serious_violations, wait_live
from playwright.async_api import Browser, WebSocket, expect
from support.server import LiveService, live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.browser

expect.set_options(timeout=20_000)


async def test_rule_created_in_the_form_fires_live_and_is_deleted_in_the_table(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """A rule made in the form shows in the table, fires live over the WebSocket, and the
    table's delete button removes it from the service."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        pair = await active_pair(live)
        page = await tokened_page(browser, live)
        alert_frames: list[dict[str, Any]] = []

        def watch(ws: WebSocket) -> None:
            def received(payload: str | bytes) -> None:
                frame = json.loads(payload)
                if isinstance(frame, dict) and frame.get("type") == "alert":
                    alert_frames.append(frame)

            ws.on("framereceived", received)

        page.on("websocket", watch)
        await page.reload()  # so the page's own WebSocket is watched from its first frame
        await wait_live(page)
        panel = page.get_by_test_id("alerts-section")
        await expect(page.get_by_test_id("alerts-heading")).to_have_text("Alertas")
        await expect(page.get_by_test_id("alert-rules-empty")).to_have_text(
            "No hay reglas todavía: creá una con el formulario."
        )
        await expect(page.get_by_test_id("alert-firings-empty")).to_be_visible()
        await expect(page.get_by_test_id("alerts-token-note")).to_be_hidden()
        await expect(page.get_by_test_id("alert-channel-ws")).to_be_checked()
        await expect(page.get_by_test_id("alert-channel-webhook")).to_be_disabled()

        await create_rule_in_form(page, pair["id"], "0", cooldown="60", note="  mirar el MEP ")
        result = page.get_by_test_id("alert-form-result")
        await expect(result).to_have_text("Listo: regla #1 creada.")
        row = page.get_by_test_id("alert-rule")
        await expect(row).to_have_count(1)
        await expect(row).to_have_attribute("data-pair-id", str(pair["id"]))
        await expect(row.locator("th")).to_contain_text(trader_name(pair))
        condition = row.locator('[data-col="condition"]')
        await expect(condition).to_have_text("Ratio medio > 0mirar el MEP")
        await expect(row.get_by_test_id("alert-note-text")).to_have_text("mirar el MEP")
        await expect(row.locator('[data-col="cooldown"]')).to_have_text("60 s")
        await expect(row.locator('[data-col="channels"]')).to_have_text("Página web")
        await expect(page.get_by_test_id("alerts-count")).to_have_text("Reglas: 1")

        # mid_ratio > 0 already holds: the rule fires once, live, and its state shows it.
        firing = page.get_by_test_id("alert-firing").first
        await expect(firing).to_have_attribute("data-rule-id", "1")
        await expect(firing).to_contain_text("Ratio medio > 0")
        await expect(firing).to_contain_text(trader_name(pair))
        assert [f["rule_id"] for f in alert_frames] == [1], "the firing did not come live"
        await expect(page.get_by_test_id("alerts-announcer")).to_have_text(
            f"Alerta: {await firing.locator('.ticker').text_content()}, Ratio medio > 0, "
            f"{await firing.locator('.observed').text_content()}."
        )
        await expect(page.get_by_test_id("alert-firings-empty")).to_be_hidden()
        await expect(row).to_have_attribute("data-state", "fired")
        await expect(row.locator('[data-col="state"]')).to_contain_text("Disparada")
        async with live.http() as client:
            rules = (await client.get("/api/alerts/rules")).json()
        assert [
            (r["id"], r["pair_id"], r["field"], r["op"], r["value"]) for r in rules["rules"]
        ] == [(1, pair["id"], "mid_ratio", ">", 0.0)]
        assert rules["rules"][0]["cooldown_s"] == 60.0
        assert rules["rules"][0]["channels"] == ["ws"]
        assert rules["rules"][0]["note"] == "mirar el MEP"
        ARTIFACTS.mkdir(exist_ok=True)
        await panel.screenshot(path=str(ARTIFACTS / "alerts-panel.png"))

        # A rule re-armed without a firing (an edit elsewhere) shows so at the next poll.
        async with live.http(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            patched = await client.patch("/api/alerts/rules/1", json={"value": 1_000_000})
            assert patched.json()["state"] == "armed"
        await expect(row).to_have_attribute("data-state", "armed")
        await expect(condition).to_have_text("Ratio medio > 1.000.000mirar el MEP")

        # Delete: asked first (Escape cancels), then gone from the service too.
        await row.get_by_test_id("alert-delete").click()
        await expect(page.get_by_test_id("confirm-text")).to_contain_text("¿Borrar la regla #1")
        await expect(page.get_by_test_id("confirm-no")).to_be_focused()
        await page.keyboard.press("Escape")
        await expect(page.get_by_test_id("alert-rules-result")).to_have_text(
            "Cancelado: no se cambió nada."
        )
        await expect(row).to_have_count(1)
        await expect(row.get_by_test_id("alert-delete")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("confirm-no")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_test_id("confirm-yes")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("alert-rule")).to_have_count(0)
        await expect(page.get_by_test_id("alerts-heading")).to_be_focused()
        await expect(page.get_by_test_id("alert-rules-result")).to_contain_text("Regla borrada: #1")
        async with live.http() as client:
            assert (await client.get("/api/alerts/rules")).json()["count"] == 0
            assert (await client.get("/api/alerts/rules/1")).status_code == 404
            history = (await client.get("/api/alerts/history")).json()
        assert history["count"] >= 1
        # The firing stays listed: the history keeps it after its rule is gone.
        await expect(page.get_by_test_id("alert-firing").first).to_contain_text("Ratio medio > 0")
        await page.context.close()


async def test_the_services_422_is_shown_in_the_form_in_either_language(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """A value that is not a number and a wait past the maximum are refused by the service,
    whose message shows beside the form, in Spanish and after a switch in English."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        pair = await active_pair(live)
        page = await tokened_page(browser, live)
        form = page.get_by_test_id("alert-form")
        await expect(form.locator("h3")).to_have_text("Nueva regla")
        await expect(form.get_by_text("Nivel", exact=True)).to_be_visible()
        await expect(page.get_by_test_id("alert-create")).to_have_text("Crear regla")
        await expect(page.get_by_test_id("alert-op").locator("option:checked")).to_have_text(
            "mayor que (>)"
        )

        value = page.get_by_test_id("alert-value")
        await create_rule_in_form(page, pair["id"], "mucho")
        result = page.get_by_test_id("alert-form-result")
        await expect(result).to_have_text(
            "El servicio rechazó la regla: Nivel: tiene que ser un número"
        )
        await expect(result).to_have_class("small error")
        await expect(value).to_have_attribute("aria-invalid", "true")
        await expect(value).to_have_attribute("aria-describedby", "alert-form-result")
        await expect(value).to_be_focused()

        # Enter submits from the keyboard; a wait beyond a week is the service's 422 too.
        await value.fill("1450,5")
        cooldown = page.get_by_test_id("alert-cooldown")
        await cooldown.fill("9999999")
        await cooldown.press("Enter")
        await expect(result).to_contain_text("Espera mínima (s): tiene que ser como máximo")
        await expect(cooldown).to_have_attribute("aria-invalid", "true")
        await expect(value).not_to_have_attribute("aria-invalid", "true")
        async with live.http() as client:
            assert (await client.get("/api/alerts/rules")).json()["count"] == 0

        await page.get_by_test_id("lang-switch").click()
        await expect(page.get_by_test_id("alerts-heading")).to_have_text("Alerts")
        await expect(form.locator("h3")).to_have_text("New rule")
        await expect(form.get_by_text("Level", exact=True)).to_be_visible()
        await expect(page.get_by_test_id("alert-create")).to_have_text("Create rule")
        await expect(page.get_by_test_id("alert-op").locator("option:checked")).to_have_text(
            "greater than (>)"
        )
        await expect(page.get_by_test_id("alert-field").locator("option:checked")).to_have_text(
            "Mid ratio"
        )
        await expect(result).to_contain_text(
            "The service refused the rule: Minimum wait (s): must be at most"
        )

        # In English a decimal point; the rule is created with the typed level.
        await cooldown.fill("")
        await value.fill("1450.5")
        await page.get_by_test_id("alert-create").click()
        await expect(result).to_have_text("Done: rule #1 created.")
        await expect(page.get_by_test_id("alert-rule")).to_have_count(1)
        await expect(
            page.get_by_test_id("alert-rule").locator('[data-col="condition"]')
        ).to_have_text("Mid ratio > 1,450.5")
        async with live.http() as client:
            rule = (await client.get("/api/alerts/rules/1")).json()
        assert rule["value"] == 1450.5
        assert rule["cooldown_s"] == live.settings.alert_default_cooldown
        await page.context.close()


async def test_without_a_token_the_panel_says_so_and_opens_the_prompt(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """No token kept: rules are listed read-only, the panel asks for the token and its button
    opens the page's prompt; once the token is entered the form appears."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        pair = await active_pair(live)
        async with live.http(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            body = {"pair_id": pair["id"], "field": "z_bid", "op": "crosses_below", "value": -3}
            assert (await client.post("/api/alerts/rules", json=body)).status_code == 201
        context = await browser.new_context(viewport={"width": 1366, "height": 900})
        page = await context.new_page()
        await page.goto(f"{live.base}/dashboard")
        note = page.get_by_test_id("alerts-token-note")
        await expect(note).to_be_visible()
        await expect(note).to_contain_text("se necesita el token de API")
        await expect(page.get_by_test_id("alert-form")).to_be_hidden()
        row = page.get_by_test_id("alert-rule")
        await expect(row.locator('[data-col="condition"]')).to_have_text(
            "Z compra cruza hacia abajo -3"
        )
        await expect(row.locator('[data-col="state"]')).to_contain_text("Armada")
        await expect(row.get_by_test_id("alert-delete")).to_be_hidden()
        await expect(row.get_by_test_id("alert-toggle")).to_be_hidden()

        await page.get_by_test_id("auth-input").blur()
        await page.get_by_test_id("alerts-token-open").focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_test_id("auth-input")).to_be_focused()
        await page.keyboard.type(TOKEN)
        await page.keyboard.press("Enter")
        await wait_live(page)
        await expect(note).to_be_hidden()
        await expect(page.get_by_test_id("alert-form")).to_be_visible()
        await expect(row.get_by_test_id("alert-delete")).to_be_visible()
        await expect(row.get_by_test_id("alert-toggle")).to_be_visible()
        label = await row.get_by_test_id("alert-delete").get_attribute("aria-label")
        assert label is not None and label.startswith(f"Borrar la regla #1 {trader_name(pair)}")

        # A token the service stops accepting: the refusal is said and the prompt offered.
        await page.evaluate("sessionStorage.setItem('cotiza.token', 'revoked-token')")
        await page.get_by_test_id("alert-value").fill("2")
        await page.get_by_test_id("alert-create").click()
        await expect(page.get_by_test_id("alert-rules-result")).to_have_text(
            "Token inválido: ingresalo de nuevo."
        )
        await expect(note).to_be_visible()
        await expect(page.get_by_test_id("alert-form")).to_be_hidden()
        async with live.http() as client:
            assert (await client.get("/api/alerts/rules")).json()["count"] == 1
        await context.close()


async def test_live_firings_are_capped_and_the_panel_passes_axe_and_fits_a_phone(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """Live firings of many rules: the newest MAX_FIRINGS, newest first; no serious axe
    violation on a laptop or a phone; on a 390 px phone no sideways or nested scroll in the
    panel and every target at least 44 px."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        async with live.http() as client:
            pairs = (await client.get("/api/ratios/pairs", params={"active": "true"})).json()
        ids = [pair["id"] for pair in pairs["pairs"]]
        page = await tokened_page(browser, live, color_scheme="dark")
        await expect(page.get_by_test_id("alert-rules-empty")).to_be_visible()
        async with live.http(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            for n in range(MAX_FIRINGS + 2):
                body = {
                    "pair_id": ids[n % len(ids)],
                    "field": "mid_ratio",
                    "op": ">",
                    "value": n / 1000,
                }
                assert (await client.post("/api/alerts/rules", json=body)).status_code == 201
            body = {
                "pair_id": ids[0],
                "field": "vol_ratio",
                "op": ">=",
                "value": 50,
                "cooldown_s": 3600,
                "note": "volatilidad",
            }
            assert (await client.post("/api/alerts/rules", json=body)).status_code == 201
        # Every mid_ratio rule fires at once (every ratio is above 0.1); the list keeps the newest.
        await expect(page.get_by_test_id("alert-rule")).to_have_count(MAX_FIRINGS + 3)
        fired = page.locator('[data-testid="alert-rule"][data-state="fired"]')
        await expect(fired).to_have_count(MAX_FIRINGS + 2)
        firings = page.get_by_test_id("alert-firing")
        await expect(firings).to_have_count(MAX_FIRINGS)
        times = [
            float(t)
            for t in await firings.evaluate_all(
                "(items) => items.map((item) => item.dataset.firedAt)"
            )
        ]
        assert times == sorted(times, reverse=True)
        async with live.http() as client:
            history = (await client.get("/api/alerts/history")).json()["data"]
        assert times == [item["fired_at"] for item in history[:MAX_FIRINGS]]
        assert await serious_violations(page) == []
        await page.context.close()

        page = await tokened_page(browser, live, color_scheme="light")
        await expect(page.get_by_test_id("alert-firing")).to_have_count(MAX_FIRINGS)
        assert await serious_violations(page) == []
        await page.context.close()

        context = await browser.new_context(
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
            device_scale_factor=2,
        )
        await context.add_init_script(f"sessionStorage.setItem('cotiza.token', '{TOKEN}')")
        page = await context.new_page()
        await page.goto(f"{live.base}/dashboard")
        await wait_live(page)
        panel = page.get_by_test_id("alerts-section")
        await expect(page.get_by_test_id("alert-firing")).to_have_count(MAX_FIRINGS)
        await expect(page.get_by_test_id("alert-rule")).to_have_count(MAX_FIRINGS + 3)
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert await page.evaluate(NESTED_SCROLLERS) == []
        assert await page.evaluate(SMALL_TARGETS) == []
        box = await panel.bounding_box()
        assert box and box["width"] <= 390
        for testid in ("alert-value", "alert-create", "alert-delete"):
            target = await page.get_by_test_id(testid).first.bounding_box()
            assert target and target["x"] >= box["x"] and target["x"] + target["width"] <= 390
        assert await serious_violations(page) == []
        ARTIFACTS.mkdir(exist_ok=True)
        await panel.screenshot(path=str(ARTIFACTS / "alerts-panel-phone.png"))
        await context.close()


async def test_a_service_without_api_token_takes_rules_from_a_page_without_one(
    service: LiveService, browser: Browser
) -> None:
    """No API_TOKEN: the form is offered without a token, also after one is forgotten, and
    the rule it sends is stored."""
    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    await context.add_init_script(
        "if (!sessionStorage.getItem('seeded')) {"
        " sessionStorage.setItem('seeded', '1');"
        " sessionStorage.setItem('cotiza.token', 'any-token'); }"
    )
    page = await context.new_page()
    await page.goto(f"{service.base}/dashboard")
    await wait_live(page)
    await expect(page.get_by_test_id("alert-form")).to_be_visible()
    await page.get_by_test_id("token-forget").click()
    await expect(page.get_by_test_id("controls-section")).to_have_attribute("data-token", "none")
    await expect(page.get_by_test_id("alert-form")).to_be_visible()
    await expect(page.get_by_test_id("alerts-token-note")).to_be_hidden()
    await page.reload()
    await wait_live(page)
    await expect(page.get_by_test_id("alert-form")).to_be_visible()
    pair = await active_pair(service)
    await create_rule_in_form(page, pair["id"], "-1")
    await expect(page.get_by_test_id("alert-form-result")).to_have_text("Listo: regla #1 creada.")
    async with service.http() as client:
        rules = (await client.get("/api/alerts/rules")).json()["rules"]
    assert [(r["pair_id"], r["value"]) for r in rules] == [(pair["id"], -1.0)]
    await context.close()


PARSE = """async ([language, texts]) => {
  const i18n = await import("/static/i18n.js");
  const { parseNumber } = await import("/static/alerttext.js");
  i18n.setLang(language);
  return texts.map((text) => parseNumber(text) ?? null);
}"""


async def test_levels_are_read_as_the_page_writes_numbers(
    service: LiveService, open_dashboard: OpenDashboard
) -> None:
    """A level typed with the page's decimal and thousands marks is that number; anything
    else goes to the service unchanged, for its 422."""
    page = (await open_dashboard(service)).page
    await wait_live(page)
    texts = ["1450,5", "1.450,5", "1.450", "0.001", "-2,5", "1e3", " 7 ", "", "abc", "1,450.5"]
    assert await page.evaluate(PARSE, ["es", texts]) == [
        1450.5,
        1450.5,
        1450,
        0.001,
        -2.5,
        1000,
        7,
        None,
        "abc",
        "1,450.5",
    ]
    assert await page.evaluate(PARSE, ["en", texts]) == [
        "1450,5",
        "1.450,5",
        1.45,
        0.001,
        "-2,5",
        1000,
        7,
        None,
        "abc",
        1450.5,
    ]


async def test_a_rule_is_paused_and_resumed_from_the_table(
    make_settings: Callable[..., Settings], browser: Browser
) -> None:
    """Pausar sets the rule inactive on the service (settings and history kept), Reanudar
    arms it again; the keyboard stays on the button, which says what it will do next."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        pair = await active_pair(live)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with live.http(headers=auth) as client:
            body = {"pair_id": pair["id"], "field": "z_bid", "op": "crosses_below", "value": -3}
            created = await client.post("/api/alerts/rules", json=body)
            assert created.status_code == 201, created.text
            rule_id = created.json()["id"]
        page = await tokened_page(browser, live)
        row = page.get_by_test_id("alert-rule")
        toggle = row.get_by_test_id("alert-toggle")
        await expect(toggle).to_have_text("Pausar")
        label = await toggle.get_attribute("aria-label")
        assert label is not None and label.startswith(f"Pausar la regla #{rule_id}")

        await toggle.click()
        await expect(page.get_by_test_id("alert-rules-result")).to_contain_text("Regla pausada")
        await expect(row.locator('[data-col="state"]')).to_contain_text("Inactiva")
        await expect(toggle).to_have_text("Reanudar")
        await expect(toggle).to_be_focused()
        async with live.http() as client:
            rule = (await client.get(f"/api/alerts/rules/{rule_id}")).json()
        assert rule["active"] is False and rule["value"] == -3 and rule["field"] == "z_bid"

        await page.keyboard.press("Enter")  # the focused button: Reanudar
        await expect(page.get_by_test_id("alert-rules-result")).to_contain_text("Regla reanudada")
        await expect(row.locator('[data-col="state"]')).to_contain_text("Armada")
        await expect(toggle).to_have_text("Pausar")
        async with live.http() as client:
            assert (await client.get(f"/api/alerts/rules/{rule_id}")).json()["active"] is True

        await page.get_by_test_id("lang-switch").click()
        await expect(toggle).to_have_text("Pause")
        await expect(page.get_by_test_id("alert-rules-result")).to_contain_text("Rule resumed")
        await page.context.close()
