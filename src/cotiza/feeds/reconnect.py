"""Reconnection policy, pure: a backoff generator and a retryable-versus-fatal classifier."""

from __future__ import annotations

import random
import ssl
from collections.abc import Iterator
from enum import StrEnum

import httpx
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from cotiza.errors import FatalFeedError, FeedError


class Action(StrEnum):
    """What to do after a failure."""

    RETRY = "retry"  # back off, then connect again
    REAUTH = "reauth"  # get a new token, then connect again
    FATAL = "fatal"  # stop and report: retrying cannot help


class CredentialsRejected(FatalFeedError):
    """Primary refused the user and password."""


class TokenRejected(FeedError):
    """A request or handshake was refused with 401: the token is no longer valid."""


class UpstreamError(FeedError):
    """Primary answered with a status that retrying may fix (5xx, 429) or not (other 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DataSilence(FeedError):
    """No market data for too long while the market is open: the connection is suspect."""


_RETRYABLE_STATUS = frozenset({408, 425, 429})


def backoff_delays(
    base: float,
    cap: float,
    *,
    factor: float = 2.0,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Endless delays before reconnection attempts 1, 2, 3, ...

    Attempt ``n`` waits ``min(cap, base * factor**(n-1))`` shrunk by a random fraction up
    to ``jitter``, so many clients dropped at once do not reconnect in lockstep. Start a
    new generator to reset the sequence after a stable connection.
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be between 0 and 1")
    draw = (rng or random.Random()).random
    ceiling = min(base, cap)
    while True:
        yield ceiling * (1.0 - jitter * draw())
        ceiling = min(cap, ceiling * factor)


def status_action(status: int) -> Action:
    """The action for an HTTP status on REST or on the WebSocket handshake."""
    if status in (401, 403):
        return Action.REAUTH
    if status >= 500 or status in _RETRYABLE_STATUS:
        return Action.RETRY
    return Action.FATAL


def classify(exc: BaseException) -> Action:
    """Whether a failure is worth retrying, needs a new token, or is final."""
    if isinstance(exc, FatalFeedError):
        return Action.FATAL
    if isinstance(exc, TokenRejected):
        return Action.REAUTH
    if isinstance(exc, UpstreamError):
        return status_action(exc.status)
    if isinstance(exc, InvalidStatus):
        return status_action(exc.response.status_code)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Action.FATAL  # a wrong host or certificate does not fix itself
    if isinstance(exc, (ConnectionClosed, InvalidHandshake, OSError, TimeoutError, FeedError)):
        return Action.RETRY
    if isinstance(exc, httpx.TransportError):
        return Action.RETRY
    # Anything else is a bug in our own code or a library; retrying keeps the service up
    # and the caller logs it with a traceback.
    return Action.RETRY


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and health, without secrets."""
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd or exc.sent
        if (
            exc.rcvd is None
            and exc.sent is not None
            and exc.sent.reason == "keepalive ping timeout"
        ):
            return "pong timeout"
        if frame is None:
            return "connection dropped without a close frame"
        who = "server" if exc.rcvd is not None else "client"
        return f"closed by {who} with code {frame.code} {frame.reason!r}".rstrip()
    if isinstance(exc, InvalidStatus):
        return f"handshake refused with HTTP {exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
