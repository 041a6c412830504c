"""Fixtures: a fake Bot API and a live service whose bot talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from alerts.alerts_kit import ALLOWED_CHAT, FAST_ALERTS, OTHER_ALLOWED_CHAT, TOKEN
from support.settings import fast_settings

from cotiza.fake_telegram import FakeTelegram
from cotiza.settings import Settings


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def bot_settings(tmp_path: Path, fake: FakeTelegram) -> Callable[..., Settings]:
    """Settings of a service whose bot polls ``fake`` and serves two chats."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **FAST_ALERTS,
            "telegram_bot_token": TOKEN,
            "telegram_api_url": fake.url,
            "telegram_chat_ids": str(OTHER_ALLOWED_CHAT),
            "telegram_chat_id": ALLOWED_CHAT,  # the monitor's variable is honoured too
            **overrides,
        }
        return fast_settings(tmp_path, **values)

    return build
