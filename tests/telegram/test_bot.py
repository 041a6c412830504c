"""The Telegram bot inside a real service, against the fake Bot API."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alerts.alerts_kit import (
    ALLOWED_CHAT,
    FOREIGN_CHAT,
    OTHER_ALLOWED_CHAT,
    create_rule,
    wait_history,
)
from support.poll import eventually
from support.server import live_service, named_tasks

from cotiza.fake_telegram import FakeTelegram, Fault
from cotiza.feed_runner import RunnerState
from cotiza.settings import Settings
from cotiza.telegram.bot import REFUSAL, PollerState, parse_command

pytestmark = pytest.mark.live


async def ask(fake: FakeTelegram, chat: int, text: str, timeout: float = 10.0) -> str:
    """Send ``text`` from ``chat`` and return the bot's next reply to that chat."""
    before = len(fake.sent_to(chat))
    await fake.inject(chat, text)
    await fake.wait_until(lambda: len(fake.sent_to(chat)) > before, timeout)
    return fake.sent_to(chat)[before]


def test_parse_command() -> None:
    """Commands are case-insensitive, may name the bot, and plain text is no command."""
    assert parse_command("/Estado@cotiza_bot ahora") == ("estado", ["ahora"])
    assert parse_command("  /ratios ") == ("ratios", [])
    assert parse_command("hola /estado") == ("", [])
    assert parse_command("") == ("", [])


async def test_allowed_chat_reads_status_and_controls_the_feed(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """An allowed chat gets real status, ratios and the table in Spanish, and can stop and
    start the feed through the same runner as the REST control."""
    async with live_service(bot_settings()) as live:
        bot = live.services.bot
        assert bot is not None
        await eventually(lambda: bot.state is PollerState.RUNNING, message="bot polling")
        assert fake.calls_of("deleteWebhook") and fake.calls_of("getMe")
        registered = [c["command"] for c in fake.state.commands]
        assert registered[:3] == ["estado", "status", "ratios"] and "alertas" in registered
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)

        status = await ask(fake, ALLOWED_CHAT, "/estado")
        assert "Estado de cotiza" in status and "Feed sim: corriendo (conectado)" in status
        assert "Conexiones WebSocket: 0" in status and "Salud:" in status
        assert "Último dato: hace" in status and "Mercado: abierto" in status
        assert (await ask(fake, OTHER_ALLOWED_CHAT, "/status")).startswith("📊 Estado de cotiza")

        ratios = await ask(fake, ALLOWED_CHAT, "/ratios")
        mid = live.services.ratios.current(1)["mid_ratio"]
        assert "AL30-AL30D: " in ratios and "compra" in ratios and mid > 0
        table = await ask(fake, ALLOWED_CHAT, "/tablero")
        assert table.startswith("📋 Tablero") or "vacío" in table
        help_text = await ask(fake, ALLOWED_CHAT, "/ayuda")
        assert "/detener" in help_text and "/alertas" in help_text
        assert "Probá /ayuda" in await ask(fake, ALLOWED_CHAT, "/borrar_todo")

        assert await ask(fake, ALLOWED_CHAT, "/detener") == "⏹ Feed detenido."
        feed = live.services.feed
        assert feed.state is RunnerState.STOPPED and feed.stopped_by_request
        assert "detenido" in await ask(fake, ALLOWED_CHAT, "/estado")
        assert await ask(fake, ALLOWED_CHAT, "/iniciar") == "▶️ Feed iniciado."
        assert feed.state is RunnerState.RUNNING
        starts = feed.starts
        assert await ask(fake, ALLOWED_CHAT, "/reiniciar") == "🔄 Feed reiniciado."
        assert feed.starts == starts + 1 and feed.state is RunnerState.RUNNING

        rule = await create_rule(live, field="mid_ratio", op=">", value=0.0)
        await wait_history(live, 1)
        alerts = await ask(fake, ALLOWED_CHAT, "/alertas")
        assert f"#{rule['id']} AL30-AL30D mid_ratio > 0,00 — disparada" in alerts
        assert "Últimos disparos:" in alerts

        handled = bot.updates
        assert handled == len([c for c in fake.state.sent if c.chat_id != FOREIGN_CHAT])
    assert not named_tasks("telegram-poller")  # stopped cleanly with the service
    assert bot.state is PollerState.STOPPED


async def test_foreign_chat_gets_one_refusal_and_nothing_else(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """A chat not allowed gets one short refusal, no data, and cannot control the feed."""
    async with live_service(bot_settings()) as live:
        bot = live.services.bot
        assert bot is not None
        for text in ("/estado", "/detener", "/ratios", "hola", "/alertas"):
            await fake.inject(FOREIGN_CHAT, text)
        marker = await ask(fake, ALLOWED_CHAT, "/ayuda")  # handled after the foreign ones
        assert "Comandos" in marker
        assert fake.sent_to(FOREIGN_CHAT) == [REFUSAL]
        assert bot.foreign_messages == 5 and bot.refused_chats == {FOREIGN_CHAT}
        assert live.services.feed.state is RunnerState.RUNNING
        await fake.inject(FOREIGN_CHAT + 1, "/estado")
        await fake.wait_until(lambda: len(fake.sent_to(FOREIGN_CHAT + 1)) == 1)
        assert fake.sent_to(FOREIGN_CHAT + 1) == [REFUSAL]


async def test_old_commands_are_not_executed(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """A command older than TELEGRAM_MAX_MESSAGE_AGE (sent while the bot was down) is not run."""
    async with live_service(bot_settings(telegram_max_message_age=60)) as live:
        before = len(fake.sent_to(ALLOWED_CHAT))
        await fake.inject(ALLOWED_CHAT, "/detener", age=600)
        await fake.wait_until(lambda: len(fake.sent_to(ALLOWED_CHAT)) > before)
        assert "no lo ejecuto" in fake.sent_to(ALLOWED_CHAT)[before]
        assert live.services.feed.state is RunnerState.RUNNING


async def test_dead_poller_restarts_with_backoff_and_shows_in_health(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """A malformed getUpdates answer kills the poller; it is restarted after a backoff,
    health shows it meanwhile, and commands are served again afterwards."""
    settings = bot_settings(telegram_backoff_base=1.0, telegram_backoff_cap=2.0)
    async with live_service(settings) as live, live.http() as http:
        bot = live.services.bot
        assert bot is not None
        await eventually(lambda: bot.state is PollerState.RUNNING)
        assert "Estado" in await ask(fake, ALLOWED_CHAT, "/estado")
        fake.add_fault("getUpdates", Fault("garbage", count=1))
        await fake.inject(ALLOWED_CHAT, "/ayuda")  # wakes the pending long poll
        await eventually(lambda: bot.state is PollerState.BACKOFF, message="poller died")
        assert bot.restarts == 1

        check = (await http.get("/health/detailed")).json()["checks"]["telegram:poller"][0]
        assert check["status"] == "warn" and check["observedValue"]["state"] == "backoff"
        assert check["observedValue"]["restarts"] == 1 and check["output"]

        await eventually(lambda: bot.state is PollerState.RUNNING, timeout=10, message="restarted")
        await fake.wait_until(lambda: any("Comandos" in t for t in fake.sent_to(ALLOWED_CHAT)))
        check = (await http.get("/health/detailed")).json()["checks"]["telegram:poller"][0]
        assert check["status"] == "pass" and check["observedValue"]["restarts"] == 1
        assert len(fake.calls_of("deleteWebhook")) == 2  # the new session started over


async def test_unreachable_bot_api_is_retried_and_never_blocks_start_up(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """With the Bot API failing, the service starts and serves; the poller keeps retrying."""
    fake.add_fault("getMe", Fault("error", status=502, count=2))
    async with live_service(bot_settings()) as live, live.http() as http:
        assert (await http.get("/cotizaciones/health")).status_code == 200
        bot = live.services.bot
        assert bot is not None
        await eventually(lambda: bot.state is PollerState.RUNNING, timeout=10)
        assert bot.restarts == 2
        assert "Estado" in await ask(fake, ALLOWED_CHAT, "/estado")


async def test_bot_stops_and_starts_as_a_role_manager_would(
    bot_settings: Callable[..., Settings], fake: FakeTelegram
) -> None:
    """``stop`` and ``start`` are idempotent; a restarted bot starts a new session and serves."""
    async with live_service(bot_settings()) as live:
        bot = live.services.bot
        assert bot is not None
        await eventually(lambda: bot.state is PollerState.RUNNING)
        await bot.stop()
        await bot.stop()
        assert bot.state is PollerState.STOPPED and not named_tasks("telegram-poller")
        assert (await bot.broadcast("x")).status == "unavailable"
        await bot.start()
        await bot.start()
        assert len(named_tasks("telegram-poller")) == 1
        await eventually(lambda: bot.state is PollerState.RUNNING)
        assert "Estado de cotiza" in await ask(fake, ALLOWED_CHAT, "/estado")
        assert len(fake.calls_of("deleteWebhook")) == 2
