"""A database unreachable at start-up: the service starts anyway, then catches up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from support.poll import eventually
from support.ports import free_port
from support.server import LiveService, live_service
from support.wsclient import recv_until, send_json, ws_client

from cotiza.settings import Settings

pytestmark = [pytest.mark.live, pytest.mark.postgres]
CALM = {"loop_lag_warn": 5.0, "loop_lag_fail": 10.0}
AL30 = "MERV - XMEV - AL30 - 24hs"


class TcpProxy:
    """A port that refuses connections until opened, then forwards to PostgreSQL; or, with
    ``silent``, accepts connections and never answers (a hung server)."""

    def __init__(self, target_port: int, silent: bool = False) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.silent = silent
        self.server: asyncio.Server | None = None
        self.held: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection (an outage)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        held, self.held = self.held, []
        for writer in held:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held.append(writer)
        if self.silent:
            return  # keep the socket open and say nothing
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.held.append(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxy(target_port: int, silent: bool = False) -> AsyncIterator[TcpProxy]:
    tcp = TcpProxy(target_port, silent)
    try:
        yield tcp
    finally:
        await tcp.close()


def through(url: str, port: int) -> str:
    """``url`` with its host:port replaced by 127.0.0.1:``port``."""
    head, rest = url.split("@", 1)
    return f"{head}@127.0.0.1:{port}/{rest.split('/', 1)[1]}"


async def quotes_flow(live: LiveService) -> None:
    """Live quotes reach a WebSocket client (no database involved)."""
    async with ws_client(live) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": [AL30]})
        tick = await recv_until(ws, lambda m: m["type"] == "tick", timeout=20)
        assert tick["symbol"] == AL30


async def test_start_without_the_database_then_catch_up(
    make_settings: Callable[..., Settings], fresh_pg_url: str
) -> None:
    target = int(fresh_pg_url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    async with proxy(target) as tcp:  # closed: connection refused
        settings = make_settings(
            database_url=through(fresh_pg_url, tcp.port), database_connect_timeout=2.0, **CALM
        )
        started = time.monotonic()
        async with live_service(settings) as live, live.http() as http:
            assert time.monotonic() - started < 30
            assert (await http.get("/livez")).status_code == 200
            assert (await http.get("/readyz")).status_code == 503
            await quotes_flow(live)

            await tcp.open()  # the database appears

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await eventually(ready, timeout=60, message="/readyz after the database appeared")
            services = live.services
            await eventually(lambda: len(services.ratios.pairs) > 0, timeout=30, message="pairs")
            await eventually(
                lambda: services.writer.stats.written_samples > 0, timeout=60, message="samples"
            )
            body: dict[str, Any] = (await http.get("/api/ratios/pairs")).json()
            assert body


async def test_a_silent_server_does_not_hang_start_up(
    make_settings: Callable[..., Settings], fresh_pg_url: str
) -> None:
    async with proxy(5432, silent=True) as tcp:
        await tcp.open()
        settings = make_settings(
            database_url=through(fresh_pg_url, tcp.port), database_connect_timeout=1.0, **CALM
        )
        started = time.monotonic()
        async with live_service(settings) as live, live.http() as http:
            assert time.monotonic() - started < 20
            assert (await http.get("/livez")).status_code == 200
            assert (await http.get("/readyz")).status_code == 503
            await quotes_flow(live)
            detailed = (await http.get("/health/detailed")).json()
            assert detailed["checks"]["database:responseTime"][0]["status"] == "fail"


async def test_a_postgresql_outage_loses_no_sample(
    make_settings: Callable[..., Settings], fresh_pg_url: str
) -> None:
    """PostgreSQL gone for a few seconds mid-run: samples due meanwhile are written after."""
    import asyncpg

    target = int(fresh_pg_url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    async with proxy(target) as tcp:
        await tcp.open()
        settings = make_settings(
            database_url=through(fresh_pg_url, tcp.port),
            database_connect_timeout=1.0,
            ratio_sample_interval=0.2,
            write_queue_size=20,
            write_retry_max=0.3,
            write_drop_window=1.0,
            **CALM,
        )
        async with live_service(settings) as live:
            writer = live.services.writer
            await eventually(
                lambda: writer.stats.written_samples > 0, timeout=30, message="samples"
            )
            await tcp.close()  # the database goes away, connections and all
            started = time.time()
            await eventually(
                lambda: writer.stats.consecutive_failures > 0, timeout=30, message="failing"
            )
            await asyncio.sleep(3)
            await tcp.open()
            ended = time.time()
            await eventually(
                lambda: writer.stats.consecutive_failures == 0 and writer.stats.pending == 0,
                timeout=60,
                message="recovered",
            )
    dsn = "postgresql://" + fresh_pg_url.split("://", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pair_id, count(*) AS n FROM ratio_samples "
            "WHERE asof > $1 AND asof < $2 GROUP BY pair_id",
            started + 0.5,
            ended - 0.5,
        )
    finally:
        await conn.close()
    due = (ended - started - 1.0) / 0.2
    assert rows and max(row["n"] for row in rows) >= due * 0.5, (rows, due)
