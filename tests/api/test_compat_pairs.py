"""Pair names the prototype's clients read: unique per client, short symbols resolved."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
from support.poll import eventually
from support.server import LiveService
from support.wsclient import recv_until, send_json, ws_client

CI_NAME = "AL30 CI-AL30D CI"

pytestmark = pytest.mark.live


async def get_json(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_dashboard_rows_are_unique_by_name_and_client(service: LiveService) -> None:
    """The 24hs pairs keep the prototype's names; the CI pair gets its settlement as a suffix."""
    async with service.http() as http:
        body = await get_json(http, "/api/ratios/dashboard")
        pairs = await get_json(http, "/api/ratios/pairs")
    keys = Counter((row["par"], row["client_id"]) for row in body["data"])
    assert keys and max(keys.values()) == 1
    names = {row["par"] for row in body["data"]}
    assert {"AL30-AL30D", "GD30-GD30D", "AL30-AL30C", CI_NAME} <= names
    assert {p["par"] for p in pairs["pairs"]} == names


async def test_ratio_frames_and_history_use_the_distinct_name(service: LiveService) -> None:
    """The CI pair's ratio frames carry its own name, and history finds it by that name."""
    async with ws_client(service) as ws:
        await send_json(ws, {"action": "subscribe_ratios", "pairs": [CI_NAME]})
        subscribed = await recv_until(ws, lambda m: m["type"] == "ratio_subscribed")
        frame = await recv_until(ws, lambda m: m["type"] == "ratio", timeout=10)
    assert len(subscribed["pairs"]) == 1
    assert frame["par"] == CI_NAME and frame["base"] == "MERV - XMEV - AL30 - CI"
    async with service.http() as http:

        async def sampled() -> bool:
            body = await get_json(http, "/api/ratios/history", par=CI_NAME)
            return bool(body["count"])

        await eventually(sampled, timeout=15, message="a stored CI sample")
        by_name = await get_json(http, "/api/ratios/history", par=CI_NAME)
        by_short = await get_json(http, "/api/ratios/history", base="AL30 CI", quote="AL30D CI")
        plain = await get_json(http, "/api/ratios/history", base="AL30", quote="AL30D")
        missing = await http.get("/api/ratios/history", params={"par": "AL30-NOPE"})
        neither = await http.get("/api/ratios/history")
    assert by_name["pair"]["par"] == by_short["pair"]["par"] == CI_NAME
    assert by_name["pair"]["id"] == subscribed["pairs"][0]
    assert plain["pair"]["par"] == "AL30-AL30D"
    assert plain["pair"]["base"] == "MERV - XMEV - AL30 - 24hs"
    assert missing.status_code == 404 and "AL30-NOPE" in missing.json()["detail"]
    assert neither.status_code == 422


async def test_a_second_pair_with_the_same_name_and_client_conflicts(
    service: LiveService,
) -> None:
    """Two pairs that would read the same (par, client_id) are refused with 409."""
    async with service.http() as http:
        first = await http.post(
            "/api/ratios/pairs",
            json={"base": "MERV - XMEV - GD30 - CI", "quote": "MERV - XMEV - GD30D - CI"},
        )
        again = await http.post(
            "/api/ratios/pairs",
            json={"base": "GD30 CI", "quote": "GD30D CI", "client_id": "default"},
        )
        other_client = await http.post(
            "/api/ratios/pairs", json={"base": "GD30 CI", "quote": "GD30D CI", "client_id": "c2"}
        )
    assert first.status_code == 201 and first.json()["par"] == "GD30 CI-GD30D CI"
    assert again.status_code == 409, again.text
    assert other_client.status_code == 201
    assert other_client.json()["base"] == "MERV - XMEV - GD30 - CI"


async def test_pairs_refuse_unknown_symbols(service: LiveService) -> None:
    """NOPE is not an instrument of the feed: 422 naming it, and no pair is created."""
    async with service.http() as http:
        before = await get_json(http, "/api/ratios/pairs")
        refused = await http.post("/api/ratios/pairs", json={"base": "NOPE", "quote": "AL30"})
        full = await http.post(
            "/api/ratios/pairs",
            json={"base": "MERV - XMEV - AL30 - 24hs", "quote": "MERV - XMEV - NOPE - 24hs"},
        )
        short = await http.post("/api/ratios/pairs", json={"base": "ggal", "quote": "GGAL CI"})
        after = await get_json(http, "/api/ratios/pairs")
    assert refused.status_code == 422 and "NOPE" in refused.json()["detail"]
    assert full.status_code == 422 and "NOPE" in full.json()["detail"]
    assert short.status_code == 201, short.text
    created = short.json()
    assert (created["base"], created["quote"]) == (
        "MERV - XMEV - GGAL - 24hs",
        "MERV - XMEV - GGAL - CI",
    )
    assert after["count"] == before["count"] + 1


async def test_short_symbols_resolve_everywhere(service: LiveService) -> None:
    """AL30 means MERV - XMEV - AL30 - 24hs in subscribe, quotes and feed start."""
    al30 = "MERV - XMEV - AL30 - 24hs"
    async with ws_client(service) as ws:
        await send_json(ws, {"action": "subscribe", "instruments": ["AL30", "al30 ci", "NOPE"]})
        reply = await recv_until(ws, lambda m: m["type"] == "subscribed")
        tick = await recv_until(ws, lambda m: m["type"] == "tick")
    assert reply["instruments"] == [al30, "MERV - XMEV - AL30 - CI", "NOPE"]
    assert reply["unknown"] == ["NOPE"]
    assert tick["symbol"] in (al30, "MERV - XMEV - AL30 - CI")
    async with service.http() as http:
        quote = await get_json(http, "/api/quotes/AL30")
        ci = await get_json(http, "/api/quotes/AL30 CI")
        missing = await http.get("/api/quotes/NOPE")
        started = await http.post("/cotizaciones/iniciar", json={"instrumentos": ["AL30", "AL30D"]})
        unknown = await http.post("/cotizaciones/iniciar", json={"instrumentos": ["NOPE"]})
    assert quote["symbol"] == al30 and ci["symbol"] == "MERV - XMEV - AL30 - CI"
    assert missing.status_code == 404
    assert started.status_code == 200
    assert started.json()["instruments"] == [al30, "MERV - XMEV - AL30D - 24hs"]
    assert unknown.status_code == 422 and "NOPE" in unknown.json()["detail"]
