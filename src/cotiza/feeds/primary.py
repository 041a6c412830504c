"""The Primary API adapter behind ``FEED=primary``: REST with httpx, market data over WebSocket.

Unlike the official connector it keeps the desired subscription set and re-sends all of
it after every reconnect, notices a lost connection three ways (close or error, a missing
pong, data silence while the market is open), renews its token on 401 or before expiry,
and reconnects with exponential backoff and jitter, stopping for good only on errors that
retrying cannot fix (bad credentials, a wrong URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from cotiza.calendar import MarketCalendar
from cotiza.errors import ConfigurationError, FatalFeedError
from cotiza.feeds.base import Feed, FeedState, QuoteSink
from cotiza.feeds.primary_frames import batches, os_message, smd_message
from cotiza.feeds.primary_parse import QUOTE_ENTRIES, FrameApplier, decode
from cotiza.feeds.reconnect import (
    Action,
    CredentialsRejected,
    DataSilence,
    TokenRejected,
    UpstreamError,
    backoff_delays,
    classify,
    describe,
)
from cotiza.models import Quote
from cotiza.settings import Settings

log = logging.getLogger(__name__)
# The socket's own logger: at DEBUG it would print handshake headers, the token among them.
_ws_log = logging.getLogger(__name__ + ".websocket")

ENVIRONMENTS = {
    "remarket": "https://api.remarkets.primary.com.ar/",
    "live": "https://api.primary.com.ar/",
}


def resolve_endpoints(env: str) -> tuple[str, str]:
    """The REST base and the WebSocket URL for ``remarket``, ``live`` or any base URL."""
    base = ENVIRONMENTS.get(env.strip().lower(), env.strip())
    parts = urlsplit(base)
    scheme = {"https": "https", "http": "http", "wss": "https", "ws": "http"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigurationError(
            "invalid configuration: PRIMARY_ENV: expected remarket, live or a base URL"
        )
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    rest = urlunsplit((scheme, parts.netloc, path, "", ""))
    ws = urlunsplit(("wss" if scheme == "https" else "ws", parts.netloc, path, "", ""))
    return rest, ws


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    obtained_at: float  # monotonic


class PrimaryFeed(Feed):
    """Market data from Primary (reMarkets, live or a broker's host)."""

    name: ClassVar[str] = "primary"

    def __init__(self, settings: Settings, *, rng: random.Random | None = None) -> None:
        # Set before the base initialiser, whose first state assignment records itself.
        self.transitions: deque[tuple[float, FeedState]] = deque(maxlen=100)
        self._state_changed = asyncio.Event()
        super().__init__(settings)
        self.rest_url, self.ws_url = resolve_endpoints(settings.primary_env)
        self.calendar = MarketCalendar.from_settings(settings)
        if _ws_log.getEffectiveLevel() < logging.INFO:
            _ws_log.setLevel(logging.INFO)
        self._rng = rng or random.Random()
        self._desired: dict[str, None] = {}
        self._catalogue: list[str] = []
        self._token: _Token | None = None
        self._ws: ClientConnection | None = None
        self._handshake_rejections = 0
        self.connected_at: float | None = None  # wall clock of the current connection
        self._connected_mono: float | None = None
        self.disconnected_at: float | None = None  # wall clock of the last loss
        self.last_loss: str | None = None
        for key in ("auth_requests", "subscriptions_sent", "pong_timeouts", "silences"):
            self.stats.extra.setdefault(key, 0.0)

    # -- public -----------------------------------------------------------------------

    @property
    def state(self) -> FeedState:
        return self._state

    @state.setter
    def state(self, value: FeedState) -> None:
        self._state = value
        self.transitions.append((time.monotonic(), value))
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()

    async def wait_for_state(self, *states: FeedState, timeout: float = 5.0) -> FeedState:
        """Wait until the feed is in one of ``states``; TimeoutError after ``timeout``."""
        async with asyncio.timeout(timeout):
            while self._state not in states:
                await self._state_changed.wait()
        return self._state

    def catalogue(self) -> list[str]:
        """Symbols listed by Primary's REST catalogue, once the feed has fetched it."""
        return list(self._catalogue)

    @property
    def desired(self) -> list[str]:
        """Every symbol this feed keeps subscribed, across reconnects."""
        return list(self._desired)

    async def subscribe(self, symbols: Sequence[str]) -> None:
        """Add ``symbols`` to the desired set; subscribe at once when connected."""
        new = [s for s in dict.fromkeys(symbols) if s not in self._desired]
        self._desired.update(dict.fromkeys(new))
        ws = self._ws
        if new and ws is not None and self.state is FeedState.CONNECTED:
            await self._send_subscriptions(ws, new)

    def shut_upstream(self) -> bool:
        ws = self._ws
        sock = ws.transport.get_extra_info("socket") if ws is not None else None
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return False
        # The loop's socket wrappers (asyncio's, uvloop's) refuse shutdown(); a duplicate
        # descriptor of the same connection does not, and shutting it ends the connection.
        try:
            duplicate = socket.socket(fileno=os.dup(fd))
        except OSError:
            return False  # closed meanwhile
        with duplicate, contextlib.suppress(OSError):
            duplicate.shutdown(socket.SHUT_RDWR)
        return True

    async def run(self, instruments: Sequence[str], sink: QuoteSink) -> None:
        s = self.settings
        if not (s.primary_user and s.primary_password):
            self.state = FeedState.FAILED
            raise FatalFeedError("PRIMARY_USER and PRIMARY_PASSWORD are required for FEED=primary")
        self._desired = dict.fromkeys(instruments)
        if not self._desired:
            log.warning("primary feed has no instruments to subscribe; set FEED_INSTRUMENTS")
        applier = FrameApplier(sink, self.stats)
        delays = self._new_backoff()
        self.state = FeedState.CONNECTING
        timeout = httpx.Timeout(s.primary_http_timeout)
        try:
            async with httpx.AsyncClient(base_url=self.rest_url, timeout=timeout) as http:
                while True:
                    try:
                        await self._connect_once(http, applier)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        if self._was_stable():
                            delays = self._new_backoff()
                        delay = self._after_failure(exc, next(delays))
                        self.stats.reconnects += 1
                        await asyncio.sleep(delay)
        finally:
            self._ws = None
            if self.state is not FeedState.FAILED:
                self.state = FeedState.STOPPED

    # -- connection -------------------------------------------------------------------

    def _new_backoff(self) -> Iterator[float]:
        s = self.settings
        return backoff_delays(s.primary_backoff_base, s.primary_backoff_cap, rng=self._rng)

    def _was_stable(self) -> bool:
        if self._connected_mono is None:
            return False
        return time.monotonic() - self._connected_mono >= self.settings.primary_stable_after

    async def _connect_once(self, http: httpx.AsyncClient, applier: FrameApplier) -> None:
        s = self.settings
        token = await self._ensure_token(http)
        if not self._catalogue:
            await self._load_catalogue(http, token)
        async with connect(
            self.ws_url,
            additional_headers={"X-Auth-Token": token},
            open_timeout=s.primary_open_timeout,
            ping_interval=s.primary_ping_interval,
            ping_timeout=s.primary_pong_timeout,
            close_timeout=s.primary_close_timeout,
            max_queue=256,
            max_size=2**22,
            user_agent_header="cotiza",
            logger=_ws_log,
        ) as ws:
            self._ws = ws
            self._handshake_rejections = 0
            self.connected_at = time.time()
            self._connected_mono = time.monotonic()
            previous = self.state
            self.state = FeedState.CONNECTED
            if previous is FeedState.RECONNECTING:
                down = self.connected_at - (self.disconnected_at or self.connected_at)
                log.info("primary feed reconnected after %.2f s (%s)", down, self.last_loss)
            else:
                log.info("primary feed connected to %s", self.ws_url)
            try:
                await self._send_subscriptions(ws, list(self._desired))
                if s.primary_order_reports and s.primary_account:
                    await ws.send(orjson.dumps(os_message(s.primary_account)).decode())
                await self._receive(ws, applier)
            finally:
                self._ws = None

    async def _send_subscriptions(self, ws: ClientConnection, symbols: list[str]) -> None:
        s = self.settings
        for batch in batches(symbols, s.primary_batch_size):
            message = smd_message(batch, QUOTE_ENTRIES, 1, s.primary_market_id)
            await ws.send(orjson.dumps(message).decode())
            self.stats.extra["subscriptions_sent"] += len(batch)

    async def _receive(self, ws: ClientConnection, applier: FrameApplier) -> None:
        loop = asyncio.get_running_loop()
        silence = self.settings.primary_silence_timeout
        yield_every = self.settings.primary_yield_every
        last_data = loop.time()
        received = 0
        while True:
            try:
                async with asyncio.timeout_at(last_data + silence):
                    raw = await ws.recv()
            except TimeoutError:
                # Nothing subscribed means nothing to expect; otherwise silence in session
                # hours means a half-dead connection that neither close nor pong revealed.
                if self._desired and self.calendar.is_open(time.time()):
                    self.stats.extra["silences"] += 1
                    raise DataSilence(f"no market data for {silence:g} s") from None
                last_data = loop.time()  # outside the session silence is normal
                continue
            recv_ns = time.time_ns()
            frame = decode(raw)
            if self.frame_sink is not None:
                self.frame_sink(recv_ns, frame)
            if type(applier.apply(frame, recv_ns / 1e9)) is Quote:
                last_data = loop.time()
            received += 1
            if received % yield_every == 0:
                await asyncio.sleep(0)  # a long burst must not starve other tasks

    def _after_failure(self, exc: Exception, delay: float) -> float:
        """Decide after a failure: raise ``FatalFeedError``, or return how long to wait."""
        action = classify(exc)
        reason = describe(exc)
        if reason == "pong timeout":
            self.stats.extra["pong_timeouts"] += 1
        self.stats.last_error = reason
        self.stats.errors += 1
        if action is Action.REAUTH:
            self._token = None
            self._handshake_rejections += 1
            # Refused this many times in a row right after a fresh token is not a token
            # problem: stop instead of hammering the server.
            if self._handshake_rejections >= self.settings.primary_max_handshake_rejections:
                action = Action.FATAL
                reason = f"Primary keeps refusing fresh tokens ({reason})"
            elif self._handshake_rejections == 1:
                delay = 0.0  # the token expired: renew it and reconnect at once
        if action is Action.FATAL:
            self.state = FeedState.FAILED
            self.stats.last_error = reason
            log.error("primary feed stopped: %s", reason)
            if isinstance(exc, FatalFeedError):
                raise exc
            raise FatalFeedError(f"primary feed stopped: {reason}") from None
        if self.state is FeedState.CONNECTED or self.disconnected_at is None:
            self.disconnected_at = time.time()
        self.state = FeedState.RECONNECTING
        self.last_loss = reason
        if not isinstance(exc, _EXPECTED):
            log.warning("primary feed failure, retrying", exc_info=exc)
        log.warning("primary feed lost (%s); reconnecting in %.2f s", reason, delay)
        return delay

    # -- REST -------------------------------------------------------------------------

    async def _ensure_token(self, http: httpx.AsyncClient) -> str:
        s = self.settings
        token = self._token
        if token is not None:
            age = time.monotonic() - token.obtained_at
            if age < s.primary_token_lifetime - s.primary_token_margin:
                return token.value
            log.info("primary token is %.0f s old; renewing it", age)
        self._token = await self._authenticate(http)
        return self._token.value

    async def _authenticate(self, http: httpx.AsyncClient) -> _Token:
        s = self.settings
        assert s.primary_user and s.primary_password  # checked in run()
        self.stats.extra["auth_requests"] += 1
        response = await http.post(
            "auth/getToken",
            headers={
                "X-Username": s.primary_user,
                "X-Password": s.primary_password.get_secret_value(),
            },
        )
        status = response.status_code
        if status in (401, 403):
            raise CredentialsRejected(
                f"Primary rejected the credentials (HTTP {status}) at {self.rest_url}: "
                "check PRIMARY_USER and PRIMARY_PASSWORD"
            )
        if not response.is_success:
            raise UpstreamError(f"authentication answered HTTP {status}", status)
        value = response.headers.get("X-Auth-Token")
        if not value:
            raise FatalFeedError(
                f"{self.rest_url} answered authentication without an X-Auth-Token header; "
                "check PRIMARY_ENV"
            )
        log.info("primary authentication succeeded")
        return _Token(value, time.monotonic())

    async def _load_catalogue(self, http: httpx.AsyncClient, token: str) -> None:
        """Fetch the instrument list once; a failure here only loses the validation."""
        response = await http.get("rest/instruments/all", headers={"X-Auth-Token": token})
        if response.status_code == 401:
            raise TokenRejected("instrument list refused with HTTP 401")
        if not response.is_success:
            log.warning("primary instrument list unavailable (HTTP %d)", response.status_code)
            return
        try:
            body = orjson.loads(response.content)
            items = body["instruments"]
            symbols = [item["instrumentId"]["symbol"] for item in items]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("primary instrument list unreadable: %s", type(exc).__name__)
            return
        self._catalogue = [s for s in symbols if isinstance(s, str)]
        known = set(self._catalogue)
        unknown = [s for s in self._desired if s not in known]
        log.info("primary catalogue: %d instruments", len(self._catalogue))
        if unknown:
            log.warning("not in Primary's catalogue: %s", ", ".join(unknown[:20]))


# Failures that are part of normal operation: logged in one line, without a traceback.
_EXPECTED: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    WebSocketException,
    httpx.TransportError,
    DataSilence,
    TokenRejected,
    UpstreamError,
)
