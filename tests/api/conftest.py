"""Fixtures of the API tests: each uvicorn WebSocket variant and its settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.server import WS_VARIANTS, WsVariant
from support.settings import settings_factory

from cotiza.settings import Settings


@pytest.fixture(params=WS_VARIANTS, ids=lambda variant: variant.id)
def ws_variant(request: pytest.FixtureRequest) -> WsVariant:
    """Each uvicorn WebSocket implementation, with compression off and on."""
    variant: WsVariant = request.param
    return variant


@pytest.fixture
def variant_settings(tmp_path: Path, ws_variant: WsVariant) -> Callable[..., Settings]:
    """A ``make_settings`` whose services run under each WebSocket variant."""
    return settings_factory(tmp_path, **ws_variant.settings())
