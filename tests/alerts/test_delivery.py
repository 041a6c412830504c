"""Delivery of firings: webhook retried with backoff, Telegram, WebSocket, never blocking."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from alerts_kit import (
    ALLOWED_CHAT,
    OTHER_ALLOWED_CHAT,
    TOKEN,
    WebhookReceiver,
    create_rule,
    wait_history,
)
from support.poll import eventually
from support.server import live_service
from support.wsclient import recv_until, send_json, ws_client

from cotiza.fake_telegram import FakeTelegram
from cotiza.settings import Settings

pytestmark = pytest.mark.live


async def test_webhook_retried_and_telegram_delivered(
    make_settings: Callable[..., Settings],
) -> None:
    """A webhook failing twice gets the same body a third time; both Telegram chats get
    the text; the firing records what was delivered where."""
    receiver = WebhookReceiver(fail_first=2)
    async with (
        receiver.running(),
        FakeTelegram(TOKEN) as fake,
    ):
        settings = make_settings(
            alert_webhook_url=receiver.url,
            telegram_bot_token=TOKEN,
            telegram_api_url=fake.url,
            telegram_chat_ids=f"{ALLOWED_CHAT},{OTHER_ALLOWED_CHAT}",
        )
        async with live_service(settings) as live:
            await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
            rule = await create_rule(
                live,
                field="mid_ratio",
                op=">",
                value=0.0,
                channels=["ws", "webhook", "telegram"],
                note="prueba",
            )
            assert rule["channels"] == ["ws", "webhook", "telegram"]
            (firing,) = await wait_history(live, 1)

    assert receiver.statuses == [500, 500, 200]
    assert receiver.bodies[0] == receiver.bodies[1] == receiver.bodies[2]
    body = receiver.bodies[0]
    assert body["type"] == "alert" and body["id"] == firing["id"]
    assert body["rule_id"] == rule["id"] and body["observed"] == firing["observed"]
    deliveries = firing["deliveries"]
    assert deliveries["webhook"] == {"status": "delivered", "attempts": 3}
    assert deliveries["ws"] == {"status": "delivered", "clients": 0}
    assert deliveries["telegram"]["status"] == "delivered"
    assert deliveries["telegram"]["chats"] == {
        str(ALLOWED_CHAT): "delivered",
        str(OTHER_ALLOWED_CHAT): "delivered",
    }
    for chat in (ALLOWED_CHAT, OTHER_ALLOWED_CHAT):
        texts = [t for t in fake.sent_to(chat) if "Alerta #" in t]
        assert len(texts) == 1 and "AL30-AL30D mid_ratio > 0,00" in texts[0]
        assert "prueba" in texts[0]


async def test_a_dead_webhook_fails_after_its_attempts_and_health_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    """A webhook that always fails is tried ALERT_WEBHOOK_ATTEMPTS times, then reported."""
    receiver = WebhookReceiver(fail_first=1000)
    async with receiver.running():
        settings = make_settings(alert_webhook_url=receiver.url, alert_webhook_attempts=3)
        async with live_service(settings) as live:
            await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
            await create_rule(live, field="mid_ratio", op=">", value=0.0, channels=["webhook"])
            (firing,) = await wait_history(live, 1)
            assert firing["deliveries"] == {
                "webhook": {"status": "failed", "attempts": 3, "error": "HTTP 500"}
            }
            async with live.http() as http:
                detailed = (await http.get("/health/detailed")).json()
            (check,) = detailed["checks"]["alerts:engine"]
            assert check["status"] == "warn" and "webhook" in check["output"]
            assert check["observedValue"]["deliveries_failed"] == 1
    assert len(receiver.bodies) == 3


async def test_a_slow_webhook_blocks_neither_ticks_nor_websocket_alerts(
    make_settings: Callable[..., Settings],
) -> None:
    """While the webhook hangs past its timeout, ratios keep flowing and the WebSocket
    alert of the same firing and of the next one arrive at once."""
    receiver = WebhookReceiver(delay=5.0)
    async with receiver.running():
        settings = make_settings(
            alert_webhook_url=receiver.url, alert_webhook_timeout=1.5, alert_webhook_attempts=2
        )
        async with live_service(settings) as live, ws_client(live) as ws:
            await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
            await send_json(ws, {"type": "subscribe_alerts"})
            await recv_until(ws, lambda m: m["type"] == "alerts_subscribed")
            began = time.monotonic()
            first = await create_rule(
                live, field="mid_ratio", op=">", value=0.0, channels=["ws", "webhook"]
            )
            frame = await recv_until(ws, lambda m: m["type"] == "alert", timeout=1.0)
            assert frame["rule_id"] == first["id"]
            await eventually(lambda: len(receiver.bodies) == 1, timeout=1.0)
            publishes = live.services.ratios.publishes
            await eventually(lambda: live.services.ratios.publishes > publishes + 5, timeout=1.0)
            second = await create_rule(live, field="mid_ratio", op=">", value=0.0, channels=["ws"])
            frame = await recv_until(ws, lambda m: m["type"] == "alert", timeout=1.0)
            assert frame["rule_id"] == second["id"]
            assert time.monotonic() - began < 1.5  # all before the first webhook try timed out
            firings = await wait_history(live, 2)
            webhook = next(f for f in firings if f["rule_id"] == first["id"])["deliveries"]
            assert webhook["webhook"] == {"status": "failed", "attempts": 2, "error": "timed out"}
