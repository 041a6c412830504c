"""State-changing requests: foreign origins refused, token before body, bodies bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import httpx
import pytest
import websockets
from support.poll import eventually
from support.server import live_service
from support.wsclient import recv_json

from cotiza.settings import Settings

TOKEN = "tok-guard-123456"
EVIL = "https://evil.example"
BIG = 100 * 1024 * 1024  # what the abuse report sent: 100 MB


def rss_mb() -> float:
    """This process's resident memory (the live service runs in the test's loop)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def raw_post(port: int, head: str, body: bytes, keep_sending: int) -> bytes:
    """Send ``head`` + ``body``, then up to ``keep_sending`` more bytes until a reply comes
    (a client streaming a huge body); return the reply's status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()

    async def read() -> None:
        with contextlib.suppress(ConnectionError):
            while b"\r\n" not in received and (data := await reader.read(4096)):
                received.extend(data)

    reading = asyncio.create_task(read())
    try:
        writer.write(head.encode() + body)
        filler = b"1," * 32768
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < keep_sending and not reading.done():
                writer.write(filler)
                await asyncio.wait_for(writer.drain(), 10)
                sent += len(filler)
        await asyncio.wait_for(reading, 10)
        return bytes(received).split(b"\r\n", 1)[0]
    finally:
        reading.cancel()
        writer.close()


def big_request(path: str, announced: bool, auth: str = "") -> tuple[str, bytes]:
    """A POST of ``BIG`` bytes: its head and the start of its body (the rest keeps coming)."""
    if announced:
        framing = f"Content-Length: {BIG}"
        body = b"["
    else:
        framing = "Transfer-Encoding: chunked"
        piece = b"1," * 32768
        body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(40))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    return head, body


@pytest.mark.parametrize("path", ["/api/ratios/pairs", "/cotizaciones/iniciar"])
@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_big_body_without_token_is_refused_unread(
    make_settings: Callable[..., Settings], path: str, announced: bool
) -> None:
    """No token: 401 before the body is read, whatever its size; memory stays put."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        before = rss_mb()
        head, body = big_request(path, announced)
        status = await raw_post(live.port, head, body, keep_sending=20 * 1024 * 1024)
        assert status.startswith(b"HTTP/1.1 401"), status
        assert rss_mb() - before < 50
        async with live.http() as http:
            assert (await http.get("/cotizaciones/health")).status_code == 200


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_big_body_with_token_gets_413_while_streaming(
    make_settings: Callable[..., Settings], announced: bool
) -> None:
    """Over MAX_BODY_BYTES: 413 (announced or chunked), nothing buffered beyond the limit."""
    async with live_service(make_settings(api_token=TOKEN)) as live:
        before = rss_mb()
        auth = f"Authorization: Bearer {TOKEN}\r\n"
        head, body = big_request("/api/ratios/pairs", announced, auth)
        status = await raw_post(live.port, head, body, keep_sending=20 * 1024 * 1024)
        assert status.startswith(b"HTTP/1.1 413"), status
        assert rss_mb() - before < 50
        async with live.http() as http:
            assert (await http.get("/cotizaciones/health")).status_code == 200


async def test_body_under_the_limit_still_works(make_settings: Callable[..., Settings]) -> None:
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = await http.post(
            "/api/ratios/pairs", json={"base": "GGAL", "quote": "YPFD"}, headers=headers
        )
        assert response.status_code == 201, response.text
        # A body just over a small limit is refused; one at the limit passes the guard.
        response = await http.post(
            "/cotizaciones/iniciar",
            content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "detail" in response.json()


async def test_max_body_bytes_setting(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(api_token=TOKEN, max_body_bytes=2048)
    async with live_service(settings) as live, live.http() as http:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        ok = b'{"instrumentos": []}'.ljust(2048)
        response = await http.post("/cotizaciones/iniciar", content=ok, headers=headers)
        assert response.status_code == 200, response.text
        response = await http.post("/cotizaciones/iniciar", content=ok + b" ", headers=headers)
        assert response.status_code == 413


async def test_foreign_origin_cannot_change_state(make_settings: Callable[..., Settings]) -> None:
    """No token (the default): a cross-site POST is refused; the feed keeps running."""
    async with live_service(make_settings()) as live, live.http() as http:
        await eventually(lambda: live.services.feed.running, 10)
        for path in ("/cotizaciones/detener", "/admin/drain"):
            response = await http.post(path, headers={"Origin": EVIL})
            assert response.status_code == 403, (path, response.text)
            assert response.json() == {"detail": "Origin not allowed"}
        response = await http.delete("/api/ratios/pairs/1", headers={"Origin": EVIL})
        assert response.status_code == 403
        assert live.services.feed.running
        assert not live.services.draining
        # Same-host pages and requests without Origin (curl, scripts) still work.
        same = {"Origin": f"http://127.0.0.1:{live.port}"}
        assert (await http.post("/cotizaciones/detener", headers=same)).status_code == 200
        assert (await http.post("/cotizaciones/iniciar_auto")).status_code == 200
        # Reading stays open to any origin (CORS decides what a page may read).
        assert (await http.get("/cotizaciones/status", headers={"Origin": EVIL})).is_success


async def test_allowed_origin_may_change_state(make_settings: Callable[..., Settings]) -> None:
    async with live_service(make_settings(allowed_origins=[EVIL])) as live, live.http() as http:
        response = await http.post("/cotizaciones/detener", headers={"Origin": EVIL})
        assert response.status_code == 200


async def test_undrain_makes_a_drain_reversible(make_settings: Callable[..., Settings]) -> None:
    async with live_service(make_settings(api_token=TOKEN)) as live, live.http() as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert (await http.post("/admin/undrain")).status_code == 401
        reply = (await http.post("/admin/undrain", headers=headers)).json()
        assert reply == {"status": "success", "draining": False, "undone": False}
        assert (await http.post("/admin/drain", headers=headers)).status_code == 200
        assert (await http.get("/readyz")).status_code == 503
        url = live.ws_url(f"/ws/cotizaciones?token={TOKEN}")
        async with websockets.connect(url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await recv_json(ws)
        reply = (await http.post("/admin/undrain", headers=headers)).json()
        assert reply == {"status": "success", "draining": False, "undone": True}
        await eventually(
            lambda: _ready(http), 15, interval=0.2, message="readiness after the undrain"
        )
        async with websockets.connect(url) as ws:
            assert (await recv_json(ws))["type"] == "connection"


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200
