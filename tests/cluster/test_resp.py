"""RespConnection, the leader's publishing connection, against real redis-servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from cluster_kit import RecordingSink, RedisServer, started
from support.poll import eventually

from cotiza.cluster import Kind, RedisBus
from cotiza.cluster.resp import RespConnection, RespError, pack
from cotiza.settings import Settings

pytestmark = [pytest.mark.cluster]

SHARED = "redis://127.0.0.1:6379/0"


def test_commands_are_packed_as_arrays_of_bulk_strings() -> None:
    assert pack(("SET", "k", 12, b"\x00\xff")) == (
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n$2\r\n\x00\xff\r\n"
    )
    assert pack(("GET", "ñ")) == b"*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xb1\r\n"


async def test_replies_come_back_in_order_and_an_error_is_one_commands(prefix: str) -> None:
    """Commands written back to back get their own replies; an error reply fails only its
    command and the connection carries on."""
    conn = await RespConnection.open(SHARED, 2.0)
    try:
        key = f"{prefix}:resp"
        futures = [conn.send("SET", key, 0), *(conn.send("INCR", key) for _ in range(50))]
        futures.append(conn.send("NOSUCHCOMMAND"))
        futures.append(conn.send("GET", key))
        replies = await asyncio.gather(*futures[:-2])
        assert replies == [b"OK", *range(1, 51)]
        with pytest.raises(RespError, match="unknown command"):
            await conn.call("NOSUCHCOMMAND")
        assert await futures[-1] == b"50"
        assert conn.is_open
        assert await conn.call("DEL", key) == 1
    finally:
        conn.close()
    assert not conn.is_open
    with pytest.raises(RespError):
        conn.send("PING")


async def test_password_and_database_come_from_the_url(tmp_path: Path) -> None:
    """AUTH with the URL's password (percent-encoded), SELECT its database; a wrong
    password fails the open with RespError, and no password fails the first command."""
    server = RedisServer(tmp_path / "redis", password="s3cr:t/x")
    server.start()
    try:
        encoded = "s3cr%3At%2Fx"
        conn = await RespConnection.open(server.url_for(3, encoded), 2.0)
        try:
            assert await conn.call("SET", "where", "db3") == b"OK"
        finally:
            conn.close()
        plain = redis.Redis(port=server.port, password="s3cr:t/x", db=3)
        assert plain.get("where") == b"db3"
        plain.close()
        with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
            await RespConnection.open(server.url_for(3, "nope"), 2.0)
        anonymous = await RespConnection.open(server.url_for(0, ""), 2.0)
        try:
            with pytest.raises(RespError, match="NOAUTH"):
                await anonymous.call("PING")
        finally:
            anonymous.close()
    finally:
        server.stop()


async def test_a_cluster_on_a_password_protected_redis(
    tmp_path: Path, bus_settings: Callable[..., Settings]
) -> None:
    """The leader's publishing connection and the followers' redis-py connections both
    authenticate from BACKPLANE: the follower gets what the leader publishes."""
    server = RedisServer(tmp_path / "redis", password="hunter2")
    server.start()
    try:
        url = server.url_for(2)
        sink = RecordingSink()
        a = RedisBus(bus_settings(node_id="a", backplane=url), RecordingSink())
        b = RedisBus(bus_settings(node_id="b", backplane=url), sink)
        async with started(a, b):
            a.lead(1)
            a.publish(Kind.TICK, "AUTH", '{"type":"tick","symbol":"AUTH"}')
            await eventually(lambda: sink.latest.get((Kind.TICK, "AUTH")) is not None, 10)
            assert a.stats.send_failures == 0
    finally:
        server.stop()


async def test_a_lost_connection_fails_every_waiting_command(tmp_path: Path) -> None:
    """Redis killed under a waiting command: the command fails with RespError at once, the
    connection reports closed and refuses new commands."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        conn = await RespConnection.open(server.url, 2.0)
        waiting = conn.send("BLPOP", "never", 0)
        started_at = time.monotonic()
        server.kill()
        with pytest.raises(RespError, match="lost"):
            await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started_at < 5
        assert not conn.is_open
        with pytest.raises(RespError):
            conn.send("PING")
        conn.close()
    finally:
        server.stop()


async def test_a_garbled_reply_fails_the_command_and_closes_the_connection() -> None:
    """Something that is not Redis answers: RespError (not a hang), and the connection closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"?not redis\r\n")
        await writer.drain()
        await reader.read(100)  # until the client goes away
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await RespConnection.open(f"redis://127.0.0.1:{port}/0", 2.0)
        with pytest.raises(RespError, match="unreadable reply"):
            await asyncio.wait_for(conn.call("PING"), 5)
        assert not conn.is_open
    finally:
        server.close()
        await server.wait_closed()
