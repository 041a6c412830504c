"""GET /api/auth/check: a cheap way for a page to verify a token before saving it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.server import live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.live

TOKEN = "check-me-7f3a"


async def test_check_without_configured_token_accepts_anyone(
    make_settings: Callable[..., Settings],
) -> None:
    """With no API_TOKEN the check answers 204 with or without a token."""
    async with live_service(make_settings()) as live, live.http() as http:
        assert (await http.get("/api/auth/check")).status_code == 204
        answer = await http.get("/api/auth/check", headers={"Authorization": "Bearer x"})
        assert answer.status_code == 204
        assert answer.content == b""


async def test_check_tells_valid_from_missing_and_wrong_tokens(
    make_settings: Callable[..., Settings],
) -> None:
    """With API_TOKEN set: 204 for the token in any accepted form, 401 without it or wrong."""
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        missing = await http.get("/api/auth/check")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in missing.text
        wrong = await http.get("/api/auth/check", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        for headers, params in (
            ({"Authorization": f"Bearer {TOKEN}"}, {}),
            ({"X-API-Token": TOKEN}, {}),
            ({}, {"token": TOKEN}),
        ):
            answer = await http.get("/api/auth/check", headers=headers, params=params)
            assert answer.status_code == 204, (headers, params)
            assert answer.headers["cache-control"] == "no-store"
