"""Before restarting a cluster leader: hand the lease over, and wait for it to move.

A leader restarted without a handover holds its upstream session and the lease until the
lease expires (``LEASE_TTL``): seconds of no quotes on every node. ``POST /admin/handover``
makes the node close its upstream session first and then release the lease (break before
make); a standby takes it within ``LEASE_RETRY``. The monitor waits a little for that
(the node's own ``/health/detailed`` names the new leader), then drains and restarts.
A standalone node or a follower needs none of this: ``hand_over`` returns None.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from cotiza.monitor import probes

HANDOVER_PATH = "/admin/handover"
POLL = 0.1  # seconds between looks at the lease while waiting for it to move


@dataclass(frozen=True)
class Handover:
    """What a handover attempt did: who led, the answer, who leads now, how long it took."""

    node_id: str | None
    epoch: int | None
    status: int | None  # of POST /admin/handover; None when it got no answer
    new_leader: str | None  # None: the lease had not moved when the wait ended
    waited: float
    error: str | None = None

    @property
    def moved(self) -> bool:
        return self.new_leader is not None

    def detail(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "epoch": self.epoch,
            "status": self.status,
            "new_leader": self.new_leader,
            "waited": round(self.waited, 3),
        }

    def describe(self) -> str:
        if self.error:
            return f"handover of {self.node_id} failed: {self.error}"
        if self.moved:
            return f"handed over: {self.node_id} → {self.new_leader} in {self.waited:.2f} s"
        return f"handover asked; the lease had not moved after {self.waited:.1f} s"


async def _cluster_block(http: httpx.AsyncClient, timeout: float) -> dict[str, Any] | None:
    """The ``cluster`` object of ``/health/detailed``; None when absent or unreadable."""
    result = await probes.http_get(http, probes.DETAILED_PATH, timeout)
    body = result.body
    block = body.get("cluster") if isinstance(body, dict) else None
    return block if isinstance(block, dict) else None


def _leads(block: dict[str, Any] | None) -> bool:
    return bool(block and block.get("leader") is True and block.get("role") != "standalone")


async def hand_over(
    host: str, port: int, token: str | None, timeout: float, wait: float
) -> Handover | None:
    """Hand the lease over if the node on ``port`` leads a cluster; None when it does not.

    Never raises: a failed call is a ``Handover`` with ``error``, and the caller restarts
    anyway (the lease then expires by itself, as after a crash).
    """
    async with probes.client(host, port, token) as http:
        block = await _cluster_block(http, timeout)
        if not _leads(block):
            return None
        assert block is not None
        node = block.get("node_id") if isinstance(block.get("node_id"), str) else None
        epoch = block.get("epoch") if isinstance(block.get("epoch"), int) else None
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                response = await http.post(HANDOVER_PATH, timeout=timeout)
        except (httpx.HTTPError, TimeoutError) as exc:
            error = f"{HANDOVER_PATH}: {type(exc).__name__}"
            return Handover(node, epoch, None, None, time.monotonic() - started, error)
        if response.status_code >= 300:
            error = f"{HANDOVER_PATH} answered HTTP {response.status_code}"
            status = response.status_code
            return Handover(node, epoch, status, None, time.monotonic() - started, error)
        deadline = started + wait
        while True:
            block = await _cluster_block(http, timeout)
            leader = block.get("leader_node") if block else None
            if block and not _leads(block) and isinstance(leader, str) and leader != node:
                waited = time.monotonic() - started
                return Handover(node, epoch, response.status_code, leader, waited)
            if time.monotonic() >= deadline:
                waited = time.monotonic() - started
                return Handover(node, epoch, response.status_code, None, waited)
            await asyncio.sleep(POLL)
