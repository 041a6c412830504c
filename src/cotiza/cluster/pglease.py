"""The leader lease as a row in PostgreSQL, judged on the database's clock.

Campaign takes the row when it is free or expired and adds one to its epoch; renew extends
it only while ``holder = me AND epoch = mine``; release frees it at once. Every
history-write transaction calls ``fence(conn)``, which holds the row with ``FOR SHARE``
until the transaction ends: a node deposed meanwhile gets ``Fenced`` and rolls back, and
no new term can begin between its check and its commit.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cotiza.cluster.lease import FEED_LEASE, Lease, LeaseInfo
from cotiza.errors import ClusterError, Fenced
from cotiza.storage.database import describe_error

log = logging.getLogger(__name__)

_TTL = "clock_timestamp() + CAST(:ttl AS double precision) * interval '1 second'"
_COLUMNS = """holder, holder_url, epoch,
    extract(epoch from expires_at)::float8 AS expires_at,
    extract(epoch from clock_timestamp())::float8 AS db_now,
    extract(epoch from acquired_at)::float8 AS acquired_at,
    extract(epoch from renewed_at)::float8 AS renewed_at"""

_CAMPAIGN = text(
    f"""UPDATE cluster_leases
    SET holder = :me, holder_url = :url, epoch = epoch + 1, expires_at = {_TTL},
        acquired_at = clock_timestamp(), renewed_at = clock_timestamp()
    WHERE name = :name AND (holder IS NULL OR expires_at <= clock_timestamp())
    RETURNING {_COLUMNS}"""
)
_CREATE = text(
    f"""INSERT INTO cluster_leases
        (name, holder, holder_url, epoch, expires_at, acquired_at, renewed_at)
    VALUES (:name, :me, :url, 1, {_TTL}, clock_timestamp(), clock_timestamp())
    ON CONFLICT (name) DO NOTHING
    RETURNING {_COLUMNS}"""
)
_CURRENT = text(f"SELECT {_COLUMNS} FROM cluster_leases WHERE name = :name")
_RENEW = text(
    f"""UPDATE cluster_leases SET expires_at = {_TTL}, renewed_at = clock_timestamp()
    WHERE name = :name AND holder = :me AND epoch = :epoch
    RETURNING epoch"""
)
_RELEASE = text(
    """UPDATE cluster_leases SET holder = NULL, holder_url = NULL, expires_at = clock_timestamp()
    WHERE name = :name AND holder = :me AND epoch = :epoch
    RETURNING epoch"""
)
_FENCE = text(
    """SELECT epoch FROM cluster_leases
    WHERE name = :name AND holder = :me AND epoch = :epoch AND expires_at > clock_timestamp()
    FOR SHARE"""
)


def _info(name: str, row: RowMapping) -> LeaseInfo:
    return LeaseInfo(
        name=name,
        holder=row["holder"],
        holder_url=row["holder_url"],
        epoch=int(row["epoch"]),
        expires_at=row["expires_at"],
        db_now=row["db_now"],
        acquired_at=row["acquired_at"],
        renewed_at=row["renewed_at"],
    )


class PgLease(Lease):
    """A lease row in ``cluster_leases``; ``engine`` must point at PostgreSQL.

    The engine may be the service's own or a small dedicated one, so that renewals never
    queue behind history writes for a pooled connection.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        node_id: str,
        node_url: str | None,
        ttl: float,
        name: str = FEED_LEASE,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ClusterError("the cluster lease needs PostgreSQL")
        super().__init__(name, node_id, node_url)
        self._engine = engine
        self.ttl = ttl

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {"name": self.name, "me": self.node_id, **extra}

    async def campaign(self) -> LeaseInfo:
        params = self._params(url=self.node_url, ttl=self.ttl)
        try:
            async with self._engine.begin() as conn:
                row = (await conn.execute(_CAMPAIGN, params)).mappings().first()
                if row is None:
                    row = (await conn.execute(_CREATE, params)).mappings().first()
                won = row is not None
                if row is None:
                    row = (await conn.execute(_CURRENT, params)).mappings().one()
                info = _info(self.name, row)
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"lease campaign failed: {describe_error(exc)}") from exc
        if won:  # only once the transaction has committed
            self._epoch = info.epoch
            log.info("lease %r won by %s, epoch %d", self.name, self.node_id, info.epoch)
        return info

    async def renew(self) -> bool:
        if self._epoch is None:
            return False
        params = self._params(epoch=self._epoch, ttl=self.ttl)
        try:
            async with self._engine.begin() as conn:
                renewed = (await conn.execute(_RENEW, params)).first() is not None
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"lease renewal failed: {describe_error(exc)}") from exc
        if not renewed:
            log.warning(
                "lease %r epoch %s is no longer held by %s",
                self.name,
                params["epoch"],
                self.node_id,
            )
            self._drop()
        return renewed

    async def release(self) -> bool:
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return False
        try:
            async with self._engine.begin() as conn:
                released = (await conn.execute(_RELEASE, self._params(epoch=epoch))).first()
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"lease release failed: {describe_error(exc)}") from exc
        log.info("lease %r epoch %d released by %s", self.name, epoch, self.node_id)
        return released is not None

    async def current(self) -> LeaseInfo | None:
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(_CURRENT, self._params())).mappings().first()
        except (SQLAlchemyError, OSError) as exc:
            raise ClusterError(f"cannot read the lease: {describe_error(exc)}") from exc
        return None if row is None else _info(self.name, row)

    async def fence(self, conn: AsyncConnection) -> None:
        epoch = self._epoch
        if epoch is None:
            raise Fenced(f"{self.node_id} holds no term of lease {self.name!r}")
        row = (await conn.execute(_FENCE, self._params(epoch=epoch))).first()
        if row is None:
            self._drop()
            raise Fenced(f"{self.node_id} no longer holds lease {self.name!r} epoch {epoch}")
