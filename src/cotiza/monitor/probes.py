"""Probes of a running service: HTTP endpoints judged by content, and a WebSocket canary.

Every probe has a hard deadline (``asyncio.timeout`` around the whole exchange, not
httpx's per-phase timeouts), so a hung service costs at most the timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

LIVENESS_PATH = "/cotizaciones/health"
DETAILED_PATH = "/health/detailed"
QUOTES_PATH = "/api/quotes"
WS_PATH = "/ws/cotizaciones"


@dataclass(frozen=True)
class HttpResult:
    path: str
    status: int | None
    latency: float
    body: Any = None
    text: str = ""
    error: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"GET {self.path}: {self.error}"
        return f"GET {self.path}: HTTP {self.status} in {self.latency * 1000:.0f} ms"


def client(host: str, port: int, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=headers)


async def http_get(
    http: httpx.AsyncClient, path: str, timeout: float, *, follow: bool = False
) -> HttpResult:
    """GET ``path`` within ``timeout`` seconds in total; never raises."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            response = await http.get(path, timeout=timeout, follow_redirects=follow)
    except TimeoutError:
        return HttpResult(path, None, timeout, error=f"timed out after {timeout:g} s")
    except httpx.ConnectError as exc:
        reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
        return HttpResult(path, None, time.perf_counter() - started, error=reason)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:200]
        return HttpResult(path, None, time.perf_counter() - started, error=error)
    latency = time.perf_counter() - started
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return HttpResult(path, response.status_code, latency, None, response.text[:200])
    return HttpResult(path, response.status_code, latency, body)


@dataclass(frozen=True)
class Verdict:
    """An endpoint judged for liveness: ``ok`` False means the process is broken."""

    ok: bool
    reason: str = ""
    status: str | None = None
    problems: tuple[str, ...] = ()


def _status_of(result: HttpResult) -> str | None:
    if isinstance(result.body, dict):
        value = result.body.get("status")
        return value if isinstance(value, str) else None
    return None


def judge_liveness(result: HttpResult) -> Verdict:
    """``/cotizaciones/health``: 200 with ``status: healthy``, nothing else."""
    if result.error:
        return Verdict(False, result.describe())
    status = _status_of(result)
    if result.status != 200:
        return Verdict(False, f"GET {result.path}: HTTP {result.status}", status)
    if not isinstance(result.body, dict):
        return Verdict(False, f"GET {result.path}: 200 without a JSON object", status)
    if status != "healthy":
        return Verdict(False, f"GET {result.path}: 200 but status {status!r}", status)
    return Verdict(True, status=status)


def check_problems(body: Any) -> tuple[str, ...]:
    """Every non-passing check of a detailed health body, as readable lines."""
    checks = body.get("checks") if isinstance(body, dict) else None
    if not isinstance(checks, dict):
        return ()
    problems = []
    for name, items in checks.items():
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or item.get("status") == "pass":
                continue
            value = item.get("observedValue")
            unit = item.get("observedUnit") or ""
            text = f"{name} {item.get('status')}"
            if value is not None and not isinstance(value, dict):
                text += f" {value} {unit}".rstrip()
            if item.get("output"):
                text += f" ({item['output']})"
            problems.append(f"{text} [{item.get('affects', 'liveness')}]")
    return tuple(problems)


def judge_detailed(result: HttpResult) -> Verdict:
    """``/health/detailed``: a 5xx, garbage or ``unhealthy`` fails; ``degraded`` is alive."""
    if result.error:
        return Verdict(False, result.describe())
    status = _status_of(result)
    problems = check_problems(result.body)
    head = f"GET {result.path}: HTTP {result.status}"
    if status == "unhealthy":
        failing = "; ".join(p for p in problems if p.endswith("[liveness]")) or "no detail"
        return Verdict(False, f"{head}, unhealthy: {failing}", status, problems)
    if result.status != 200:
        return Verdict(False, head + (f" ({status})" if status else ""), status, problems)
    if not isinstance(result.body, dict):
        return Verdict(False, f"GET {result.path}: 200 without a JSON object", status)
    if status not in {"healthy", "degraded"}:
        return Verdict(False, f"{head} with unknown status {status!r}", status, problems)
    return Verdict(True, status=status, problems=problems)


class Canary(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # the service has fresh quotes but the WebSocket path did not carry them
    QUIET = "quiet"  # nothing fresh upstream (feed paused, market closed): not a liveness fault


@dataclass(frozen=True)
class CanaryResult:
    outcome: Canary
    detail: str
    connect_s: float | None = None
    pong_s: float | None = None
    tick_s: float | None = None
    symbols: int = 0


def _identity(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item.get("ts_ms"), item.get("bid"), item.get("offer"), item.get("last"))


async def _cached_quotes(http: httpx.AsyncClient, timeout: float) -> dict[str, tuple[Any, ...]]:
    result = await http_get(http, QUOTES_PATH, timeout)
    quotes = result.body.get("quotes") if isinstance(result.body, dict) else None
    if result.status != 200 or not isinstance(quotes, list):
        raise ConnectionError(f"cannot read cached quotes: {result.describe()}")
    return {q["symbol"]: _identity(q) for q in quotes if isinstance(q, dict) and "symbol" in q}


async def _recv(ws: ClientConnection, deadline: float) -> dict[str, Any]:
    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
        frame = await ws.recv()
    message = json.loads(frame)
    if not isinstance(message, dict):
        raise ValueError("a frame that is not a JSON object")
    return message


async def ws_canary(
    http: httpx.AsyncClient,
    ws_url: str,
    timeout: float,
    window: float,
    token: str | None = None,
    max_symbols: int = 500,
) -> CanaryResult:
    """Connect, ``ping`` → ``pong``, subscribe, and require a *fresh* tick within ``window``.

    The ticks sent right after ``subscribe`` are the cached quotes, so they prove nothing;
    a fresh tick is a second, different quote of a symbol. When none arrives, the cache
    decides: if it moved, the WebSocket path is broken (FAIL); if not, the feed is quiet.
    """
    url = f"{ws_url}?token={token}" if token else ws_url
    started = time.monotonic()
    try:
        async with websockets.connect(url, open_timeout=timeout, close_timeout=1) as ws:
            deadline = started + timeout
            hello = await _recv(ws, deadline)
            connect_s = time.monotonic() - started
            if hello.get("type") != "connection":
                return CanaryResult(Canary.FAIL, f"unexpected greeting {hello.get('type')!r}")
            await ws.send(json.dumps({"type": "ping"}))
            sent = time.monotonic()
            while (await _recv(ws, deadline)).get("type") != "pong":
                pass
            pong_s = time.monotonic() - sent
            before = await _cached_quotes(http, max(0.1, deadline - time.monotonic()))
            if not before:
                return CanaryResult(Canary.QUIET, "no quotes cached yet", connect_s, pong_s)
            symbols = sorted(before)[:max_symbols]
            await ws.send(json.dumps({"type": "subscribe", "instruments": symbols}))
            subscribed = time.monotonic()
            tick_s = await _first_fresh_tick(ws, subscribed + window)
            if tick_s is not None:
                return CanaryResult(
                    Canary.PASS, "fresh tick", connect_s, pong_s, tick_s - subscribed, len(symbols)
                )
            after = await _cached_quotes(http, timeout)
            moved = [s for s in symbols if after.get(s) != before.get(s)]
            if moved:
                detail = f"{len(moved)} quotes changed but no tick arrived within {window:g} s"
                return CanaryResult(Canary.FAIL, detail, connect_s, pong_s, None, len(symbols))
            detail = f"no fresh quote upstream within {window:g} s (feed quiet)"
            return CanaryResult(Canary.QUIET, detail, connect_s, pong_s, None, len(symbols))
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        if code in {1008, 1012, 1013}:
            return CanaryResult(Canary.QUIET, f"closed by the server with {code}")
        return CanaryResult(Canary.FAIL, f"connection closed ({code})")
    except TimeoutError:
        return CanaryResult(Canary.FAIL, f"no answer within {timeout:g} s")
    except (OSError, ValueError, websockets.InvalidHandshake, ConnectionError) as exc:
        return CanaryResult(Canary.FAIL, f"{type(exc).__name__}: {exc}"[:200])


async def _first_fresh_tick(ws: ClientConnection, deadline: float) -> float | None:
    seen: dict[str, tuple[Any, ...]] = {}
    try:
        while True:
            message = await _recv(ws, deadline)
            if message.get("type") != "tick" or "symbol" not in message:
                continue
            symbol, identity = message["symbol"], _identity(message)
            if symbol in seen and seen[symbol] != identity:
                return time.monotonic()
            seen[symbol] = identity
    except TimeoutError:
        return None


async def drain(
    host: str, port: int, token: str | None, timeout: float
) -> tuple[int | None, int | None, str | None]:
    """``POST /admin/drain``: WebSocket clients get 1012; (HTTP status, closed, error)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with httpx.AsyncClient(headers=headers) as http, asyncio.timeout(timeout):
            response = await http.post(f"http://{host}:{port}/admin/drain", timeout=timeout)
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, TimeoutError, ValueError) as exc:
        return None, None, f"drain failed: {type(exc).__name__}"
    closed = body.get("closed") if isinstance(body, dict) else None
    return response.status_code, closed if isinstance(closed, int) else None, None


def ws_url(host: str, port: int, path: str = WS_PATH) -> str:
    return f"ws://{host}:{port}{path}"


def first_failure(verdicts: Sequence[Verdict]) -> str:
    return next((v.reason for v in verdicts if not v.ok), "")
