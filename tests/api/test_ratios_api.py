"""Ratio pairs, live ratios, stored history, the dashboard table and quotes over HTTP."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote as urlquote

import httpx
import pytest
from support.contract import DASHBOARD_ROW_FIELDS, INDICATOR_FIELDS, RATIO_FIELDS, TICK_FIELDS
from support.poll import eventually
from support.server import LiveService, live_service

from cotiza.settings import Settings

pytestmark = pytest.mark.live


def byma(ticker: str, settlement: str = "24hs") -> str:
    return f"MERV - XMEV - {ticker} - {settlement}"


AL30, AL30D = byma("AL30"), byma("AL30D")
DEFAULT_PAIRS = {
    (byma("AL30"), byma("AL30D")),
    (byma("GD30"), byma("GD30D")),
    (byma("AL30"), byma("AL30C")),
    (byma("GD30"), byma("GD30C")),
    (byma("AL30D"), byma("AL30C")),
    (byma("AL30", "CI"), byma("AL30D", "CI")),
}


async def get_json(http: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def active_ratio_ids(body: dict[str, Any]) -> set[int]:
    return {item["pair_id"] for item in body["data"]}


async def test_default_pairs_are_seeded(service: LiveService) -> None:
    """A new database starts with the MEP, CCL and canje pairs, active with factor 1."""
    async with service.http() as http:
        body = await get_json(http, "/api/ratios/pairs")
    assert body["count"] == len(body["pairs"]) == len(DEFAULT_PAIRS)
    assert {(p["base"], p["quote"]) for p in body["pairs"]} == DEFAULT_PAIRS
    for pair in body["pairs"]:
        assert (pair["factor"], pair["client_id"], pair["active"]) == (1.0, "default", True)
    names = {p["par"] for p in body["pairs"]}
    assert {"AL30-AL30D", "GD30-GD30D", "AL30-AL30C", "AL30D-AL30C"} <= names


async def test_pairs_crud_and_dashboard(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Pairs are created, refused, found, deactivated and deleted; the dashboard follows."""
    # ``db_url`` runs this once on a SQLite file and once on the real PostgreSQL server.
    async with live_service(make_settings(database_url=db_url)) as live, live.http() as http:
        new = {"base": byma("GGAL"), "quote": byma("GGAL", "CI"), "client_id": "desk-1"}
        created = await http.post("/api/ratios/pairs", json={**new, "factor": 2.5})
        assert created.status_code == 201, created.text
        pair = created.json()
        assert pair["factor"] == 2.5 and pair["active"] is True
        assert (pair["base"], pair["quote"], pair["client_id"]) == (
            new["base"],
            new["quote"],
            "desk-1",
        )
        pair_id = pair["id"]
        assert (await get_json(http, f"/api/ratios/pairs/{pair_id}")) == pair

        duplicate = await http.post("/api/ratios/pairs", json=new)
        assert duplicate.status_code == 409
        assert isinstance(duplicate.json()["detail"], str)
        other_client = await http.post("/api/ratios/pairs", json={**new, "client_id": "desk-2"})
        assert other_client.status_code == 201
        for bad in (
            {**new, "factor": 0},
            {**new, "factor": -1},
            {**new, "factor": "lots"},
            {"base": AL30},
            {**new, "quote": new["base"]},
        ):
            response = await http.post("/api/ratios/pairs", json=bad)
            assert response.status_code == 422, bad
            assert "detail" in response.json()
        for method in ("GET", "PATCH", "DELETE"):
            response = await http.request(
                method, "/api/ratios/pairs/999999", json={"active": False}
            )
            assert response.status_code == 404, method
            assert "999999" in response.json()["detail"]
        response = await http.patch(f"/api/ratios/pairs/{pair_id}", json={"factor": 0})
        assert response.status_code == 422

        ratios = await get_json(http, "/api/ratios")
        assert pair_id in active_ratio_ids(ratios)
        live_pair = next(r for r in ratios["data"] if r["pair_id"] == pair_id)
        assert live_pair["factor"] == 2.5 and live_pair["client_id"] == "desk-1"

        patched = await http.patch(f"/api/ratios/pairs/{pair_id}", json={"active": False})
        assert patched.status_code == 200
        assert patched.json()["active"] is False
        assert pair_id not in active_ratio_ids(await get_json(http, "/api/ratios"))
        listed = await get_json(http, "/api/ratios/pairs", active="true")
        assert pair_id not in {p["id"] for p in listed["pairs"]}
        everything = await get_json(http, "/api/ratios/pairs")
        assert pair_id in {p["id"] for p in everything["pairs"]}
        board = await get_json(http, "/api/ratios/dashboard")
        assert pair_id not in {row["pair_id"] for row in board["data"]}
        reactivated = await http.patch(f"/api/ratios/pairs/{pair_id}", json={"active": True})
        assert reactivated.json()["active"] is True
        assert pair_id in active_ratio_ids(await get_json(http, "/api/ratios"))

        deleted = await http.delete(f"/api/ratios/pairs/{pair_id}")
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert (await http.get(f"/api/ratios/pairs/{pair_id}")).status_code == 404
        assert pair_id not in active_ratio_ids(await get_json(http, "/api/ratios"))

        mep_id = next(
            p["id"]
            for p in (await get_json(http, "/api/ratios/pairs"))["pairs"]
            if (p["base"], p["quote"]) == (AL30, AL30D)
        )

        async def mep_row() -> dict[str, Any] | None:
            board = await get_json(http, "/api/ratios/dashboard")
            return next((r for r in board["data"] if r["pair_id"] == mep_id), None)

        async def mep_has_value() -> bool:
            row = await mep_row()
            return row is not None and row["ultimo_ratio_operado"] is not None

        await eventually(mep_has_value, timeout=10, message="a stored MEP sample on the dashboard")
        board = await get_json(http, "/api/ratios/dashboard")
        mep = {"base": "AL30", "quote": "AL30D", "client_id": "default"}
        raw = await get_json(http, "/api/ratios/history", **mep)
        minute = await get_json(http, "/api/ratios/history", resolution="1m", **mep)
    assert raw["count"] >= 1 and 1 <= minute["count"] <= min(2, raw["count"])
    assert minute["data"][-1]["asof"] % 60 == 0
    assert board["status"] == "success"
    assert board["count"] == len(board["data"]) == len(DEFAULT_PAIRS) + 1
    assert isinstance(board["query_time_ms"], float | int)
    for row in board["data"]:
        assert row.keys() >= DASHBOARD_ROW_FIELDS
    row = next(r for r in board["data"] if r["pair_id"] == mep_id)
    assert row["par"] == "AL30-AL30D" and row["client_id"] == "default"
    assert 1000 < row["ultimo_ratio_operado"] < 2000  # the simulated MEP rate
    assert row["ultimo_timestamp"].endswith("Z")
    assert row["promedio_rueda"] is not None and row["promedio_1mes"] is not None
    assert row["minimo_mensual"] <= row["promedio_1mes"] <= row["maximo_mensual"]


def mid(quote: dict[str, Any]) -> float:
    value: float = (quote["bid"] + quote["offer"]) / 2
    return value


async def test_live_ratios_for_every_active_pair(service: LiveService) -> None:
    """/api/ratios has every active pair, and MEP's mid ratio matches AL30 mid over AL30D mid."""
    async with service.http() as http:
        pairs = (await get_json(http, "/api/ratios/pairs", active="true"))["pairs"]
        mep_id = next(p["id"] for p in pairs if (p["base"], p["quote"]) == (AL30, AL30D))

        async def close_to_quotes() -> bool:
            base = await get_json(http, f"/api/quotes/{AL30}")
            quote = await get_json(http, f"/api/quotes/{AL30D}")
            ratios = await get_json(http, "/api/ratios")
            item = next(r for r in ratios["data"] if r["pair_id"] == mep_id)
            if item["mid_ratio"] is None:
                return False
            # Quotes and the ratio are read a moment apart; allow for a few ticks of drift.
            return math.isclose(item["mid_ratio"], mid(base) / mid(quote), rel_tol=2e-3)

        await eventually(close_to_quotes, message="MEP mid ratio equal to the quotes' mid ratio")
        body = await get_json(http, "/api/ratios")
    assert body["count"] == len(body["data"])
    assert active_ratio_ids(body) == {p["id"] for p in pairs}
    assert isinstance(body["timestamp"], float)
    for item in body["data"]:
        assert item.keys() >= RATIO_FIELDS and item.keys() >= INDICATOR_FIELDS
        assert item["type"] == "ratio"
    mep = next(r for r in body["data"] if r["pair_id"] == mep_id)
    assert mep["bid_ratio"] <= mep["mid_ratio"] <= mep["ask_ratio"]
    assert mep["ratio_spread"] is None or mep["ratio_spread"] >= 0


async def test_history_returns_samples_and_downsamples(service: LiveService) -> None:
    """Stored samples come back raw and averaged per resolution bucket."""
    params = {"base": "AL30", "quote": "AL30D", "client_id": "default"}
    async with service.http() as http:

        async def enough() -> bool:
            body = await get_json(http, "/api/ratios/history", **params)
            return bool(body["count"] >= 4)

        await eventually(enough, message="four stored samples")
        raw = await get_json(http, "/api/ratios/history", **params)
        full = await get_json(http, "/api/ratios/history", base=AL30, quote=AL30D)
        minute = await get_json(http, "/api/ratios/history", resolution="1m", **params)
        future = await get_json(
            http,
            "/api/ratios/history",
            **params,
            **{"from": str(time.time() + 60)},
            to=str(time.time() + 120),
        )
    assert raw["pair"]["par"] == "AL30-AL30D" and raw["pair"]["base"] == AL30
    assert full["pair"]["id"] == raw["pair"]["id"]
    assert raw["resolution"] is None
    stamps = [row["asof"] for row in raw["data"]]
    assert stamps == sorted(stamps)
    assert raw["from"] <= stamps[0] and stamps[-1] < raw["to"]
    for row in raw["data"]:
        assert row["mid_ratio"] is not None and 1000 < row["mid_ratio"] < 2000
        assert {"bid_ratio", "ask_ratio", "sma180_mid", "z_bid"} <= row.keys()
    assert minute["resolution"] == 60
    assert 1 <= minute["count"] <= 2 < raw["count"]
    for bucket in minute["data"]:
        assert bucket["asof"] % 60 == 0
        assert 1000 < bucket["mid_ratio"] < 2000
    assert future["count"] == 0


async def test_history_rejects_bad_parameters(service: LiveService) -> None:
    """Unparseable times, resolutions or an inverted range are 422; an unknown pair is 404."""
    base = {"base": "AL30", "quote": "AL30D"}
    async with service.http() as http:
        for params in (
            {**base, "from": "yesterday"},
            {**base, "to": "soon"},
            {**base, "resolution": "fortnight"},
            {**base, "resolution": "0"},
            {**base, "resolution": "-5m"},
            {**base, "from": "2030-01-02T00:00:00", "to": "2030-01-01T00:00:00"},
            {**base, "limit": "0"},
            {"base": "AL30"},
        ):
            response = await http.get("/api/ratios/history", params=params)
            assert response.status_code == 422, params
            assert "detail" in response.json()
        response = await http.get("/api/ratios/history", params={"base": "X", "quote": "Y"})
        assert response.status_code == 404
        assert isinstance(response.json()["detail"], str)
        iso = await http.get(
            "/api/ratios/history",
            params={**base, "from": "2024-01-01T00:00:00Z", "resolution": "1h"},
        )
        assert iso.status_code == 200


async def test_quotes_with_age(service: LiveService) -> None:
    """/api/quotes lists every cached quote with its age; one symbol is found by name."""
    async with service.http() as http:
        await eventually(lambda: len(service.services.cache.symbols()) == 21, message="snapshot")
        body = await get_json(http, "/api/quotes")
        assert body["count"] == len(body["quotes"]) == 21
        for quote in body["quotes"]:
            assert quote.keys() >= TICK_FIELDS
            assert 0 <= quote["age"] < 30
            assert quote["stale"] is False
        for symbol in (AL30, "DLR/DIC26"):
            one = await get_json(http, f"/api/quotes/{urlquote(symbol)}")
            assert one["symbol"] == symbol
            assert one["offer"] > one["bid"] > 0
            assert one["mid"] == pytest.approx(mid(one))
            assert one["age"] >= 0
        missing = await http.get("/api/quotes/MERV - XMEV - NOPE - 24hs")
    assert missing.status_code == 404
    assert "NOPE" in missing.json()["detail"]


async def test_stale_quotes_give_null_ratios(make_settings: Callable[..., Settings]) -> None:
    """Once the quotes age past QUOTE_STALE_AFTER in market hours, ratios are null, not old."""
    async with live_service(make_settings(quote_stale_after=0.3)) as live, live.http() as http:

        async def mep() -> dict[str, Any]:
            body = await get_json(http, "/api/ratios")
            item: dict[str, Any] = next(r for r in body["data"] if r["par"] == "AL30-AL30D")
            return item

        async def priced() -> bool:
            return (await mep())["mid_ratio"] is not None

        await eventually(priced, message="a live MEP ratio")
        assert (await http.post("/cotizaciones/detener")).status_code == 200

        async def nulled() -> bool:
            item = await mep()
            return all(item[f] is None for f in ("bid_ratio", "ask_ratio", "mid_ratio"))

        await eventually(nulled, message="stale quotes turning the MEP ratio null")
        quote = await get_json(http, f"/api/quotes/{AL30}")
    assert quote["stale"] is True
