"""The fake Bot API itself: long polling, offsets, recording, faults, tokens."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from alerts.alerts_kit import TOKEN

from cotiza.fake_telegram import BOT_USER, FakeTelegram, Fault

pytestmark = pytest.mark.live


async def test_long_poll_answers_when_a_message_arrives(fake: FakeTelegram) -> None:
    """getUpdates with a timeout waits, and returns as soon as a message is injected."""
    api = f"{fake.url}/bot{TOKEN}"
    async with httpx.AsyncClient(timeout=10) as http:
        began = time.monotonic()
        poll = asyncio.create_task(http.post(f"{api}/getUpdates", data={"timeout": "5"}))
        await fake.wait_until(lambda: bool(fake.calls_of("getUpdates")))
        update_id = await fake.inject(77, "/estado")
        result = (await poll).json()["result"]
        assert time.monotonic() - began < 4
        assert [u["update_id"] for u in result] == [update_id]
        message = result[0]["message"]
        assert message["chat"]["id"] == 77 and message["text"] == "/estado"
        assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 7}]

        # Without a new offset the update is delivered again; the offset confirms it.
        again = (await http.post(f"{api}/getUpdates", data={"offset": "0"})).json()["result"]
        assert [u["update_id"] for u in again] == [update_id]
        empty = await http.post(f"{api}/getUpdates", data={"offset": str(update_id + 1)})
        assert empty.json()["result"] == []
        began = time.monotonic()
        waited = await http.post(
            f"{api}/getUpdates", data={"offset": str(update_id + 1), "timeout": "0.3"}
        )
        assert waited.json()["result"] == [] and time.monotonic() - began >= 0.25


async def test_methods_tokens_and_faults(fake: FakeTelegram) -> None:
    """The bot's methods answer like the Bot API; a wrong token is 401; faults are served."""
    api = f"{fake.url}/bot{TOKEN}"
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{api}/getMe")).json() == {"ok": True, "result": BOT_USER}
        wrong = await http.get(f"{fake.url}/bot123:nope/getMe")
        assert wrong.status_code == 401 and wrong.json()["error_code"] == 401
        sent = await http.post(f"{api}/sendMessage", data={"chat_id": "-5", "text": "123"})
        assert sent.json()["result"]["chat"]["id"] == -5
        assert fake.sent_to(-5) == ["123"]
        commands = '[{"command": "estado", "description": "Estado"}]'
        await http.post(f"{api}/setMyCommands", data={"commands": commands})
        assert fake.state.commands == [{"command": "estado", "description": "Estado"}]
        assert (await http.post(f"{api}/deleteWebhook")).json()["result"] is True
        assert (await http.post(f"{api}/banChatMember")).status_code == 404

        fake.add_fault("getMe", Fault("error", status=502, count=2))
        assert [(await http.get(f"{api}/getMe")).status_code for _ in range(3)] == [502, 502, 200]
        over_http = await http.post(
            f"{fake.url}/_fake/faults", json={"method": "getUpdates", "kind": "garbage", "count": 1}
        )
        assert over_http.status_code == 200
        assert (await http.post(f"{api}/getUpdates")).json() == {"ok": True, "result": "garbage"}
        injected = await http.post(f"{fake.url}/_fake/messages", json={"chat_id": 5, "text": "x"})
        assert injected.json()["update_id"] >= 1
        calls = (await http.get(f"{fake.url}/_fake/calls")).json()
        assert [c["method"] for c in calls["calls"]][:2] == ["getMe", "sendMessage"]
        assert TOKEN not in str(calls)
