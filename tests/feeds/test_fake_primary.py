"""The fake Primary server itself: its REST paths, control endpoints and command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from primary_kit import AL30, DIC26
from support.ports import free_port

from cotiza.fake_primary import FakePrimary, Instrument, ReplayEngine, load_instruments
from cotiza.feeds.primary_frames import md_frame, smd_message
from cotiza.feeds.sim import SimFeed
from cotiza.settings import Settings

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def authed(fake: FakePrimary) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as http:
        response = await http.post(
            "auth/getToken", headers={"X-Username": "user", "X-Password": "password"}
        )
        assert response.status_code == 200 and response.content == b""
        http.headers["X-Auth-Token"] = response.headers["X-Auth-Token"]
        yield http


async def test_authentication_gives_a_token_in_a_header_and_rejects_bad_passwords(
    fake: FakePrimary,
) -> None:
    """getToken answers the token in X-Auth-Token; wrong passwords and tokens get 401."""
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as http:
        bad = await http.post("auth/getToken", headers={"X-Username": "user", "X-Password": "x"})
        assert bad.status_code == 401 and "X-Auth-Token" not in bad.headers
        denied = await http.get("rest/instruments/all", headers={"X-Auth-Token": "forged"})
        assert denied.status_code == 401
        assert denied.json() == {"status": "ERROR", "message": "Access Denied"}
    async with authed(fake) as http:
        assert (await http.get("rest/segment/all")).json()["status"] == "OK"


async def test_rest_paths_answer_like_primary(fake: FakePrimary) -> None:
    """Instruments, details, market data (with nulls) and trades have Primary's shapes."""
    async with authed(fake) as http:
        listing = (await http.get("rest/instruments/all")).json()
        assert {"instrumentId": {"marketId": "ROFX", "symbol": DIC26}, "cficode": "FXXXSX"} in (
            listing["instruments"]
        )
        details = (await http.get("rest/instruments/details")).json()["instruments"]
        assert {"currency", "minPriceIncrement", "priceConvertionFactor"} <= set(details[0])
        detail = await http.get(
            "rest/instruments/detail", params={"symbol": AL30, "marketId": "ROFX"}
        )
        assert detail.json()["instrument"]["instrumentId"]["symbol"] == AL30
        params = {"marketId": "ROFX", "symbol": AL30, "entries": "BI,OF,LA,SE", "depth": "2"}
        data = (await http.get("rest/marketdata/get", params=params)).json()
        assert data["status"] == "OK" and data["depth"] == 2 and data["aggregated"] is True
        assert data["marketData"]["SE"] is None and data["marketData"]["BI"][0]["price"] > 0
        trades = await http.get(
            "rest/data/getTrades",
            params={
                "marketId": "ROFX",
                "symbol": AL30,
                "dateFrom": "2026-01-01",
                "dateTo": "2026-12-31",
            },
        )
        trade = trades.json()["trades"][0]
        assert {"symbol", "servertime", "size", "price", "datetime"} <= set(trade)
        missing = await http.get("rest/marketdata/get", params={**params, "symbol": "NOPE"})
        assert missing.json() == {
            "status": "ERROR",
            "description": "Product NOPE:ROFX doesn't exist",
            "message": None,
        }
        assert (await http.get("rest/nothing/here")).status_code == 404


async def test_websocket_records_client_frames_and_answers_subscriptions(fake: FakePrimary) -> None:
    """A subscription gets a snapshot per product, errors for unknown ones, then live data."""
    async with authed(fake) as http:
        token = http.headers["X-Auth-Token"]
    async with websockets.connect(fake.ws_url, additional_headers={"X-Auth-Token": token}) as ws:
        await ws.send(orjson.dumps(smd_message([AL30, "NOPE"])).decode())
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        second = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        frames = {first.get("type", "error"): first, second.get("type", "error"): second}
        assert frames["Md"]["instrumentId"]["symbol"] == AL30
        assert frames["error"]["description"] == "Product NOPE:ROFX doesn't exist"
        await ws.send("not json")
        invalid = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        while invalid.get("type") == "Md":
            invalid = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert invalid["status"] == "ERROR"
    assert fake.subscriptions(1) == [AL30, "NOPE"]
    assert [f.text for f in fake.client_frames][-1] == "not json"


async def test_handshake_without_a_valid_token_is_refused_with_401(fake: FakePrimary) -> None:
    """The WebSocket handshake needs a current token."""
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(fake.ws_url, additional_headers={"X-Auth-Token": "forged"})
    assert refused.value.response.status_code == 401
    assert fake.handshakes[-1][1] == 401


async def test_token_ttl_expires_tokens(fake: FakePrimary) -> None:
    """With a token lifetime set, an old token stops working for REST."""
    async with authed(fake) as http:
        fake.faults.token_ttl = 0.0
        assert (await http.get("rest/segment/all")).status_code == 401


async def test_control_endpoints_set_faults_and_report_state(fake: FakePrimary) -> None:
    """/_fake/faults sets knobs, /_fake/action acts, /_fake/state reports."""
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as http:
        response = await http.post("_fake/faults", json={"close_after": 7, "close_code": 1011})
        assert response.status_code == 200
        assert response.json()["faults"]["close_after"] == 7
        assert fake.faults.close_code == 1011
        assert (await http.post("_fake/faults", json={"nope": 1})).status_code == 400
        assert (
            await http.post("_fake/action", json={"action": "expire_tokens"})
        ).status_code == 200
        assert (await http.post("_fake/action", json={"action": "dance"})).status_code == 400
        state = (await http.get("_fake/state")).json()
        assert state["connections"] == [] and state["client_frames"] == 0


async def test_replay_engine_serves_a_recording(tmp_path: Path) -> None:
    """The fake can quote from a recording, listing the instruments it contains."""
    path = tmp_path / "rec.ndjson"
    quotes = list(SimFeed(Settings(sim_seed=5)).generate(40))
    path.write_bytes(
        b"".join(
            orjson.dumps({"recv_ns": 1_000_000 * i, "frame": md_frame(q)}) + b"\n"
            for i, q in enumerate(quotes)
        )
    )
    engine = ReplayEngine(path, speed=0.0, loop=False)
    async with FakePrimary(engine=engine) as fake, authed(fake) as http:
        listing = (await http.get("rest/instruments/all")).json()["instruments"]
        assert {i["instrumentId"]["symbol"] for i in listing} == {q.symbol for q in quotes}
        params = {"marketId": "ROFX", "symbol": quotes[0].symbol, "entries": "BI"}
        data = (await http.get("rest/marketdata/get", params=params)).json()
        assert data["marketData"]["BI"][0]["price"] is not None


def test_instrument_files_as_json_or_text(tmp_path: Path) -> None:
    """Instrument lists load from JSON (strings or objects) or one symbol a line."""
    as_json = tmp_path / "i.json"
    as_json.write_text(json.dumps(["A", {"symbol": "B", "cficode": "ESXXXX"}]))
    as_text = tmp_path / "i.txt"
    as_text.write_text("# comment\nA\n\nB\n")
    assert load_instruments(as_json) == [Instrument("A"), Instrument("B", "ROFX", "ESXXXX")]
    assert [i.symbol for i in load_instruments(as_text)] == ["A", "B"]


@pytest.mark.subprocess
async def test_cli_runs_the_fake_with_users_and_faults_until_sigterm(tmp_path: Path) -> None:
    """`cotiza fake-primary` serves with its users and fault knobs and stops on SIGTERM."""
    port = free_port()
    instruments = tmp_path / "instruments.txt"
    instruments.write_text(f"{AL30}\n{DIC26}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotiza", "fake-primary", "--port", str(port),
        "--users", "ana:secret,bob:pw", "--instruments", str(instruments),
        "--fault", "close_after=50", "--log-level", "WARNING",
        cwd=ROOT, env=os.environ.copy(), stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = await asyncio.wait_for(process.stderr.readline(), 30)
        assert f":{port}/" in banner.decode()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/", timeout=5) as http:
            ok = await http.post(
                "auth/getToken", headers={"X-Username": "ana", "X-Password": "secret"}
            )
            assert ok.status_code == 200
            token = ok.headers["X-Auth-Token"]
            listing = await http.get("rest/instruments/all", headers={"X-Auth-Token": token})
            assert [i["instrumentId"]["symbol"] for i in listing.json()["instruments"]] == [
                AL30,
                DIC26,
            ]
            state = (await http.get("_fake/state")).json()
            assert state["faults"]["close_after"] == 50
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 15) == 0
