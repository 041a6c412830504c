"""Broker session limits of the fake Primary: how many market-data sessions one user may hold.

Real brokers limit concurrent sessions per user and differ in what they do with one too
many: refuse the new login, or kick the oldest session. Cluster tests need both (a frozen
leader still holds its session while a new leader logs in), and ``peak_sessions`` -- the
highest number of concurrent sessions any one user ever had -- to show whether two
processes were ever connected upstream at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from typing_extensions import TypedDict

from cotiza.fake_primary.wire import WsPeer


class OnExcess(StrEnum):
    REFUSE = "refuse"  # the handshake of the session over the limit fails (HTTP 429)
    KICK_OLDEST = "kick-oldest"  # the new session is accepted; the user's oldest one is closed


# Retryable for clients (the Primary adapter backs off and tries again), unlike 401/403.
REFUSE_STATUS = 429
KICK_CLOSE_CODE = 1008
KICK_REASON = "session limit: replaced by a newer session"


@dataclass
class Admission:
    """The decision about one new session."""

    accepted: bool
    kick: list[int] = field(default_factory=list)  # session ids to close first

    @property
    def status(self) -> int:
        """The handshake's HTTP status: 101 Switching Protocols, or the refusal."""
        return 101 if self.accepted else REFUSE_STATUS


def kick(peer: WsPeer) -> None:
    """End a session displaced by a newer one, whatever its state (even a frozen client)."""
    peer.close(KICK_CLOSE_CODE, KICK_REASON)
    peer.writer.close()


class SessionLimitsState(TypedDict):
    """The session-limit part of ``/_fake/state``."""

    max_sessions_per_user: int | None
    on_excess: str
    peak_sessions: int  # most concurrent market-data sessions of any one user since start
    refused_sessions: int
    kicked_sessions: int
    open_sessions: dict[str, int]


class SessionLimits:
    """Tracks the open market-data sessions of each user and enforces the limit."""

    def __init__(self, max_per_user: int | None = None, on_excess: OnExcess = OnExcess.REFUSE):
        if max_per_user is not None and max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self.max_per_user = max_per_user
        self.on_excess = OnExcess(on_excess)
        self._open: dict[str, list[int]] = {}  # user -> session ids, oldest first
        self.peak_sessions = 0
        self.refused = 0
        self.kicked = 0

    def admit(self, user: str) -> Admission:
        """Whether a new session of ``user`` may open, and which ones it displaces."""
        open_ids = self._open.get(user, [])
        limit = self.max_per_user
        if limit is None or len(open_ids) < limit:
            return Admission(True)
        if self.on_excess is OnExcess.REFUSE:
            self.refused += 1
            return Admission(False)
        excess = len(open_ids) - limit + 1
        return Admission(True, list(open_ids[:excess]))

    def opened(self, user: str, session_id: int, displaced: list[int]) -> None:
        """Record an accepted session; ``displaced`` sessions no longer count as open."""
        ids = [i for i in self._open.get(user, []) if i not in displaced]
        self.kicked += len(displaced)
        ids.append(session_id)
        self._open[user] = ids
        self.peak_sessions = max(self.peak_sessions, len(ids))

    def closed(self, user: str, session_id: int) -> None:
        ids = self._open.get(user)
        if ids and session_id in ids:
            ids.remove(session_id)

    def open_sessions(self, user: str) -> int:
        return len(self._open.get(user, []))

    def state(self) -> SessionLimitsState:
        return {
            "max_sessions_per_user": self.max_per_user,
            "on_excess": str(self.on_excess),
            "peak_sessions": self.peak_sessions,
            "refused_sessions": self.refused,
            "kicked_sessions": self.kicked,
            "open_sessions": {user: len(ids) for user, ids in self._open.items() if ids},
        }
