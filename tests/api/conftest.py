"""Fixtures: settings for fast tests and a live service per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from live import WS_VARIANTS, LiveService, WsVariant, fast_settings, live_service

from cotiza.settings import Settings


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def build(**overrides: Any) -> Settings:
        return fast_settings(tmp_path, **overrides)

    return build


@pytest.fixture(params=WS_VARIANTS, ids=lambda variant: variant.id)
def ws_variant(request: pytest.FixtureRequest) -> WsVariant:
    """Each uvicorn WebSocket implementation, with compression off and on."""
    variant: WsVariant = request.param
    return variant


@pytest.fixture
async def service(make_settings: Callable[..., Settings]) -> AsyncIterator[LiveService]:
    async with live_service(make_settings()) as live:
        yield live
