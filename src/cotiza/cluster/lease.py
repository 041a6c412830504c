"""The leader lease: who may hold the upstream session and write history, and under which epoch.

``Lease`` is the small interface the rest of cotiza sees; ``LocalLease`` is the standalone
process (always held, epoch 1) and ``cotiza.cluster.pglease.PgLease`` the cluster's row in
PostgreSQL. The epoch is the fencing token: it grows with every new term, and every shared
resource (history writes, the backplane) refuses an epoch that is no longer current.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from cotiza.errors import Fenced

FEED_LEASE = "feed"


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One reading of a lease row. Times are epoch seconds on the database's clock."""

    name: str
    holder: str | None
    holder_url: str | None
    epoch: int
    expires_at: float | None  # None: never expires (the standalone lease)
    db_now: float  # the database's clock when this was read, to judge expiry without ours
    acquired_at: float | None = None
    renewed_at: float | None = None

    @property
    def remaining(self) -> float | None:
        """Seconds until the lease expires (negative once expired); None when it never does."""
        return None if self.expires_at is None else self.expires_at - self.db_now

    @property
    def held(self) -> bool:
        """Someone holds the lease right now."""
        remaining = self.remaining
        return self.holder is not None and (remaining is None or remaining > 0)

    def as_dict(self) -> dict[str, object]:
        """For health, diagnose and ``cotiza cluster status``."""
        return {
            "name": self.name,
            "holder": self.holder,
            "holder_url": self.holder_url,
            "epoch": self.epoch,
            "held": self.held,
            "remaining_s": None if self.remaining is None else round(self.remaining, 3),
        }


class Lease(ABC):
    """A named lease that one node at a time holds, for a term identified by its epoch.

    Every method but ``epoch`` talks to the lease's store and may raise
    ``cotiza.errors.ClusterError`` (or a subclass) when the store is unreachable; a failed
    call tells nothing about who holds the lease, so callers retry.
    """

    def __init__(self, name: str, node_id: str, node_url: str | None = None) -> None:
        self.name = name
        self.node_id = node_id
        self.node_url = node_url
        self._epoch: int | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch of the term this node holds, or None when it holds none."""
        return self._epoch

    def _drop(self) -> None:
        self._epoch = None

    @abstractmethod
    async def campaign(self) -> LeaseInfo:
        """Take the lease if it is free or expired; the row afterwards (won: holder is us)."""

    @abstractmethod
    async def renew(self) -> bool:
        """Extend our term; False (and the term forgotten) when it is no longer ours."""

    @abstractmethod
    async def release(self) -> bool:
        """Give the lease up at once so another node can take it; True if we still held it."""

    @abstractmethod
    async def current(self) -> LeaseInfo | None:
        """Read the row without changing it (health, diagnose); None if never campaigned."""

    @abstractmethod
    async def fence(self, conn: AsyncConnection) -> None:
        """Inside a write transaction: raise ``Fenced`` unless our term is still current.

        The check holds the row (``FOR SHARE``) until the transaction ends, so no other
        node can start a term between the check and the commit.
        """

    def forget(self) -> None:
        """Stop acting under the current term without telling the store (self-fencing)."""
        self._drop()


class LocalLease(Lease):
    """The standalone process's lease: always available, epoch 1, nothing to fence against."""

    def __init__(self, node_id: str = "standalone", node_url: str | None = None) -> None:
        super().__init__(FEED_LEASE, node_id, node_url)

    def _info(self) -> LeaseInfo:
        holder = self.node_id if self._epoch is not None else None
        return LeaseInfo(self.name, holder, self.node_url, 1, None, time.time())

    async def campaign(self) -> LeaseInfo:
        self._epoch = 1
        return self._info()

    async def renew(self) -> bool:
        return self._epoch is not None

    async def release(self) -> bool:
        held = self._epoch is not None
        self._drop()
        return held

    async def current(self) -> LeaseInfo | None:
        return self._info()

    async def fence(self, conn: AsyncConnection) -> None:
        if self._epoch is None:
            raise Fenced(f"lease {self.name!r} is not held by {self.node_id}")
