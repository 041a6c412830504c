"""The fake Primary's broker session limits: refuse or kick the oldest, and peak_sessions."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from primary_kit import AL30
from support.ports import free_port
from websockets.asyncio.client import ClientConnection

from cotiza.fake_primary import FakePrimary
from cotiza.fake_primary.sessions import OnExcess, SessionLimits
from cotiza.feeds.primary_frames import smd_message

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]
USERS = {"ana": "a", "bob": "b"}


async def token(url: str, user: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        response = await http.post(
            "auth/getToken", headers={"X-Username": user, "X-Password": USERS[user]}
        )
        assert response.status_code == 200
        return response.headers["X-Auth-Token"]


@contextlib.asynccontextmanager
async def session(url: str, ws_url: str, user: str) -> AsyncIterator[ClientConnection]:
    """One market-data session of ``user``, subscribed to AL30, first frame received."""
    headers = {"X-Auth-Token": await token(url, user)}
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        await ws.send(orjson.dumps(smd_message([AL30])).decode())
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["type"] == "Md"
        yield ws


async def state(fake: FakePrimary) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as http:
        body: dict[str, object] = (await http.get("_fake/state")).json()
        return body


async def test_without_a_limit_peak_sessions_counts_concurrent_sessions_per_user() -> None:
    """With no limit every session opens; peak_sessions is the most one user held at once."""
    async with FakePrimary(USERS, rate=50.0) as fake:
        async with session(fake.url, fake.ws_url, "ana"), session(fake.url, fake.ws_url, "bob"):
            assert (await state(fake))["peak_sessions"] == 1  # two users, one session each
            async with session(fake.url, fake.ws_url, "ana"):
                body = await state(fake)
                assert body["peak_sessions"] == 2
                assert body["open_sessions"] == {"ana": 2, "bob": 1}
        await fake.wait_until(lambda: not fake.sessions)
        body = await state(fake)
        assert body["peak_sessions"] == 2 and body["open_sessions"] == {}
        assert body["max_sessions_per_user"] is None


async def test_refuse_rejects_the_session_over_the_limit_with_429() -> None:
    """Under ``refuse`` the extra handshake gets 429, the first session keeps its data."""
    async with FakePrimary(USERS, rate=200.0, max_sessions_per_user=1) as fake:
        async with session(fake.url, fake.ws_url, "ana") as first:
            headers = {"X-Auth-Token": await token(fake.url, "ana")}
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(fake.ws_url, additional_headers=headers)
            assert refused.value.response.status_code == 429
            async with session(fake.url, fake.ws_url, "bob"):  # another user is not affected
                pass
            frame = orjson.loads(await asyncio.wait_for(first.recv(), 5))
            assert frame["type"] == "Md"
            body = await state(fake)
            assert body["peak_sessions"] == 1 and body["refused_sessions"] == 1
        await fake.wait_until(lambda: fake.limits.open_sessions("ana") == 0)
        async with session(fake.url, fake.ws_url, "ana"):  # the slot is free again
            assert (await state(fake))["peak_sessions"] == 1


async def test_kick_oldest_closes_the_older_session_of_the_same_user() -> None:
    """Under ``kick-oldest`` the new session opens and the oldest one is closed with 1008."""
    fake = FakePrimary(USERS, rate=200.0, max_sessions_per_user=1, on_excess="kick-oldest")
    async with (
        fake,
        session(fake.url, fake.ws_url, "ana") as old,
        session(fake.url, fake.ws_url, "ana") as new,
    ):
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(old.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        frame = orjson.loads(await asyncio.wait_for(new.recv(), 5))
        assert frame["type"] == "Md"
        body = await state(fake)
        assert body["peak_sessions"] == 1 and body["kicked_sessions"] == 1
        assert body["open_sessions"] == {"ana": 1}


async def test_kick_oldest_ends_a_frozen_client_that_never_answers() -> None:
    """A session whose client stopped reading (a frozen leader) is still displaced."""
    async with FakePrimary(
        USERS, rate=200.0, max_sessions_per_user=1, on_excess="kick-oldest"
    ) as fake:
        headers = {"X-Auth-Token": await token(fake.url, "ana")}
        reader, writer = await asyncio.open_connection(fake.host, fake.port)
        writer.write(  # a raw handshake; after it this client never reads or answers again
            (
                f"GET / HTTP/1.1\r\nHost: {fake.host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nX-Auth-Token: {headers['X-Auth-Token']}\r\n\r\n"
            ).encode()
        )
        await fake.wait_until(lambda: fake.limits.open_sessions("ana") == 1)
        async with session(fake.url, fake.ws_url, "ana"):
            await fake.wait_until(lambda: len(fake.sessions) == 1)
            assert fake.limits.peak_sessions == 1 and fake.limits.kicked == 1
            # Woken up, the frozen client finds its session over: the socket is at EOF.
            received = await asyncio.wait_for(reader.read(), 5)
            assert received.startswith(b"HTTP/1.1 101")
        writer.close()


def test_session_limits_rules() -> None:
    """The pure rules: refuse counts, kick-oldest displaces the oldest, peak never counts them."""
    limits = SessionLimits(2, OnExcess.KICK_OLDEST)
    for session_id in (1, 2):
        assert limits.admit("u").accepted
        limits.opened("u", session_id, [])
    admission = limits.admit("u")
    assert admission.accepted and admission.kick == [1]
    limits.opened("u", 3, admission.kick)
    assert limits.open_sessions("u") == 2 and limits.peak_sessions == 2
    refuse = SessionLimits(1)
    refuse.opened("u", 1, [])
    assert refuse.admit("u").status == 429 and refuse.refused == 1
    with pytest.raises(ValueError, match="at least 1"):
        SessionLimits(0)


@pytest.mark.subprocess
async def test_cli_flags_set_the_session_limit() -> None:
    """``cotiza fake-primary --max-sessions-per-user 1 --on-excess kick-oldest`` enforces it."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cotiza", "fake-primary", "--port", str(port),
        "--users", "ana:a,bob:b", "--max-sessions-per-user", "1",
        "--on-excess", "kick-oldest", "--log-level", "WARNING",
        cwd=ROOT, env=os.environ.copy(), stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        banner = await asyncio.wait_for(process.stderr.readline(), 30)
        assert f":{port}/" in banner.decode()
        url, ws_url = f"http://127.0.0.1:{port}/", f"ws://127.0.0.1:{port}/"
        async with session(url, ws_url, "ana") as old, session(url, ws_url, "ana"):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(old.recv(), 5)
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                body = (await http.get("_fake/state")).json()
        assert body["max_sessions_per_user"] == 1 and body["on_excess"] == "kick-oldest"
        assert body["peak_sessions"] == 1 and body["kicked_sessions"] == 1
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 15) == 0


@pytest.mark.subprocess
def test_cli_refuses_a_session_limit_below_one() -> None:
    """A limit of 0 is a usage error of the command line (exit 2), not a silent no-limit."""
    proc = subprocess.run(
        [sys.executable, "-m", "cotiza", "fake-primary", "--max-sessions-per-user", "0"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"--max-sessions-per-user" in proc.stderr and b"positive" in proc.stderr
