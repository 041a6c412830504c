"""The REST side of the fake Primary server, and its ``/_fake/*`` control endpoints."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

import orjson
from typing_extensions import TypedDict

from cotiza.fake_primary.sessions import SessionLimitsState
from cotiza.fake_primary.wire import HttpRequest
from cotiza.feeds.primary_frames import Frame, error_frame, unknown_product

if TYPE_CHECKING:
    from cotiza.fake_primary.server import FakePrimary

log = logging.getLogger(__name__)

Reply = tuple[int, bytes, dict[str, str]]

_SEGMENTS = [
    {"marketSegmentId": "DDF", "marketId": "ROFX"},
    {"marketSegmentId": "DDA", "marketId": "ROFX"},
    {"marketSegmentId": "MERV", "marketId": "ROFX"},
]


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Reply:
    return status, orjson.dumps(body), headers or {}


def _denied() -> Reply:
    return _json(401, {"status": "ERROR", "message": "Access Denied"})


def handle_rest(fake: FakePrimary, request: HttpRequest) -> Reply:
    """Answer one REST request as Primary would."""
    path = request.path
    if path.startswith("/_fake/"):
        return _control(fake, request)
    if path == "/auth/getToken" and request.method == "POST":
        user = request.headers.get("x-username", "")
        ok = bool(user) and fake.users.get(user) == request.headers.get("x-password")
        fake.auth_attempts.append((user, ok))
        if not ok:
            return _json(401, {"status": "ERROR", "message": "Authentication failed"})
        return 200, b"", {"X-Auth-Token": fake.issue_token(user)}
    if request.method != "GET":
        return _json(405, {"status": "ERROR", "message": "Method not allowed"})
    if fake.token_user(request.headers.get("x-auth-token")) is None:
        return _denied()
    if path == "/rest/segment/all":
        return _json(200, {"status": "OK", "segments": _SEGMENTS})
    if path == "/rest/instruments/all":
        listing = [i.listing() for i in fake.instruments.values()]
        return _json(200, {"status": "OK", "instruments": listing})
    if path == "/rest/instruments/details":
        details = [i.detail() for i in fake.instruments.values()]
        return _json(200, {"status": "OK", "instruments": details})
    if path == "/rest/instruments/detail":
        instrument = fake.instruments.get(request.query.get("symbol", ""))
        if instrument is None:
            return _unknown(request)
        return _json(200, {"status": "OK", "instrument": instrument.detail()})
    if path == "/rest/marketdata/get":
        return _market_data(fake, request)
    if path == "/rest/data/getTrades":
        return _trades(fake, request)
    return _json(404, {"status": "ERROR", "message": f"Not found: {path}"})


def _unknown(request: HttpRequest) -> Reply:
    symbol = request.query.get("symbol", "")
    market = request.query.get("marketId", "ROFX")
    return _json(200, error_frame(unknown_product(symbol, market)))


def _market_data(fake: FakePrimary, request: HttpRequest) -> Reply:
    symbol = request.query.get("symbol", "")
    if symbol not in fake.instruments:
        return _unknown(request)
    try:
        depth = max(1, int(request.query.get("depth", "1") or "1"))
    except ValueError:
        return _json(200, error_frame("depth must be a number"))
    entries = [e for e in request.query.get("entries", "BI,OF,LA").split(",") if e]
    data = _market_data_of(fake.engine.latest(symbol))
    out: dict[str, object] = {}
    for entry in entries:
        value = data.get(entry)
        if isinstance(value, list):
            value = value[:depth] or None
        out[entry] = value
    return _json(200, {"status": "OK", "marketData": out, "depth": depth, "aggregated": True})


def _market_data_of(frame: Frame | None) -> Mapping[str, object]:
    data = frame.get("marketData") if frame else None
    return data if isinstance(data, Mapping) else {}


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _trades(fake: FakePrimary, request: HttpRequest) -> Reply:
    symbol = request.query.get("symbol", "")
    if symbol not in fake.instruments:
        return _unknown(request)
    latest = fake.engine.latest(symbol)
    last = _market_data_of(latest).get("LA")
    trades = []
    if isinstance(last, dict) and last.get("price") is not None:
        stamp = int(last.get("date") or _int(latest.get("timestamp") if latest else None))
        when = dt.datetime.fromtimestamp(stamp / 1000, dt.UTC)
        trades.append(
            {
                "symbol": symbol,
                "servertime": stamp,
                "size": last.get("size"),
                "price": last.get("price"),
                "datetime": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            }
        )
    return _json(200, {"status": "OK", "trades": trades})


def _control(fake: FakePrimary, request: HttpRequest) -> Reply:
    """``/_fake/faults`` (POST knobs), ``/_fake/action`` (POST), ``/_fake/state`` (GET)."""
    path = request.path
    try:
        body = orjson.loads(request.body) if request.body else {}
    except orjson.JSONDecodeError:
        return _json(400, {"detail": "body must be JSON"})
    if path == "/_fake/faults" and request.method == "POST":
        try:
            fake.faults.update(body)
        except KeyError as exc:
            return _json(400, {"detail": f"unknown fault knob {exc.args[0]!r}"})
        log.info("fault knobs set: %s", body)
    elif path == "/_fake/action" and request.method == "POST":
        action = body.get("action")
        if action == "expire_tokens":
            fake.expire_tokens()
        elif action == "drop":
            fake.drop_all()
        elif action == "close":
            fake.close_all(int(body.get("code", 1001)), str(body.get("reason", "")))
        elif action == "malformed":
            fake.inject_malformed()
        elif action == "unknown_types":
            fake.inject_unknown_types(int(body.get("count", 3)))
        elif action == "burst":
            fake._spawn(fake.burst(int(body.get("count", 10_000))), "fake-primary-burst")
        else:
            return _json(400, {"detail": f"unknown action {action!r}"})
    elif path == "/_fake/client-frames" and request.method == "GET":
        frames = [{"connection": f.connection, "text": f.text} for f in fake.client_frames]
        return _json(200, {"frames": frames})
    elif path != "/_fake/state":
        return _json(404, {"detail": "unknown control endpoint"})
    return _json(200, state(fake))


class SessionState(TypedDict):
    id: int
    user: str
    symbols: list[str]
    sent: int


class FakeState(SessionLimitsState):
    """What ``/_fake/state`` answers."""

    faults: dict[str, object]
    connections: list[SessionState]
    connections_total: int
    handshakes: int
    client_frames: int
    frames_sent: int


def state(fake: FakePrimary) -> FakeState:
    """What the fake has seen and how it is set, for tests and the CLI."""
    return {
        "faults": vars(fake.faults),
        "connections": [
            {"id": s.id, "user": s.user, "symbols": sorted(s.symbols), "sent": s.sent}
            for s in fake.sessions.values()
        ],
        "connections_total": len(fake.connection_ids),
        "handshakes": len(fake.handshakes),
        "client_frames": len(fake.client_frames),
        "frames_sent": fake.frames_sent,
        **fake.limits.state(),  # peak_sessions: most concurrent sessions of any one user
    }
