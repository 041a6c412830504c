"""Errors at the WebSocket boundary: bugs close with 1011 and a traceback, departures quietly."""

from __future__ import annotations

import logging

import pytest
from support.poll import eventually
from support.server import LiveService
from support.wsclient import closed_by_server, recv_until, send_json, ws_client

from cotiza.ws.session import Session

pytestmark = pytest.mark.live

AL30 = "MERV - XMEV - AL30 - 24hs"


def ws_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("cotiza.ws") and r.levelno >= level]


async def test_a_failing_handler_closes_its_client_with_1011_and_logs_the_traceback(
    service: LiveService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one command handler closes that client with 1011, logged with its traceback;
    the other clients carry on."""

    async def broken(self: Session) -> None:
        raise RuntimeError("injected handler failure")

    monkeypatch.setattr(Session, "get_status", broken)
    async with ws_client(service) as bystander, ws_client(service) as victim:
        await send_json(victim, {"type": "get_status"})
        closed = await closed_by_server(victim)
        assert closed.rcvd is not None
        assert (closed.rcvd.code, closed.rcvd.reason) == (1011, "Internal error")
        await send_json(bystander, {"type": "ping"})
        assert (await recv_until(bystander, lambda m: m["type"] == "pong"))["timestamp"] > 0
        await eventually(lambda: len(service.services.hub.connections) == 1, message="one left")
    [record] = ws_records(caplog, logging.ERROR)
    assert record.name == "cotiza.ws.session"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "injected handler failure"


async def test_a_client_that_vanishes_is_cleaned_up_without_warnings(
    service: LiveService, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose TCP connection is reset mid-stream is unregistered and nothing in the
    WebSocket code logs a warning or an error for it."""
    caplog.set_level(logging.DEBUG, logger="cotiza.ws")
    async with ws_client(service) as ws:
        await send_json(ws, {"type": "subscribe", "instruments": [AL30]})
        await recv_until(ws, lambda m: m["type"] == "tick")
        ws.transport.abort()
        await eventually(lambda: not service.services.hub.connections, message="client cleaned up")
    assert ws_records(caplog, logging.WARNING) == []
