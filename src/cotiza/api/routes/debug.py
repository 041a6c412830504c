"""Fault injection for the operations tests; mounted only when ``DEBUG_FAULTS`` is on.

Settings refuse ``DEBUG_FAULTS=1`` unless ``COTIZA_ENV=test`` and ``HOST`` is a loopback
address, so none of this is reachable in a production configuration. ``HOST`` is not
always what the server binds (``uvicorn main:app --host 0.0.0.0`` ignores it), so the
routes also stay shut (404) until ``confirm_loopback`` has seen the server's real sockets,
all on loopback. Every route also requires the API token when one is set.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import psutil
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from typing_extensions import TypedDict

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.models import Quote
from cotiza.service import Services

if TYPE_CHECKING:
    from cotiza.api.app import Runtime

log = logging.getLogger(__name__)


def _loopback(sockname: object) -> bool:
    if isinstance(sockname, str | bytes):  # a Unix socket: local by nature
        return True
    host = str(sockname[0]) if isinstance(sockname, tuple) else ""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def confirm_loopback(runtime: Runtime, sockets: list[socket.socket]) -> bool:
    """Open the fault routes if every socket the server listens on is a loopback one.

    Called once the server has bound its sockets.
    """
    names = [sock.getsockname() for sock in sockets]
    allowed = bool(names) and all(_loopback(name) for name in names)
    runtime.debug_faults_open = allowed
    if not allowed:
        shown = ", ".join(str(n[0]) if isinstance(n, tuple) else str(n) for n in names) or "?"
        log.error(
            "DEBUG_FAULTS refused: the server listens on %s, not only on loopback; "
            "the fault routes stay disabled",
            shown,
        )
    return allowed


def _bound_to_loopback(request: Request) -> None:
    runtime: Runtime = request.app.state.runtime
    if not runtime.debug_faults_open:
        raise HTTPException(404, "Not Found")


router = APIRouter(prefix="/debug", tags=["debug"], dependencies=[Depends(_bound_to_loopback)])


class BlockReply(TypedDict):
    status: Literal["success"]
    blocking: float
    repeat: int
    every: float


class FeedGateReply(TypedDict):
    status: Literal["success"]
    paused: bool


class TicksReply(TypedDict):
    status: Literal["success"]
    ticks: Literal["stopped", "flowing"]


class OrphanReply(TypedDict):
    status: Literal["success"]
    pid: int


class FeedGate:
    """Sits between the feed and the cache; while paused, quotes are dropped."""

    def __init__(self, services: Services) -> None:
        self.apply = services.cache.apply
        self.paused = False

    def __call__(self, quote: Quote) -> None:
        if not self.paused:
            self.apply(quote)


@dataclass
class Faults:
    """What this process has been told to break, kept on ``app.state``."""

    gate: FeedGate | None = None
    ticks_stopped: bool = False
    holders: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _faults(request: Request) -> Faults:
    faults: Faults | None = getattr(request.app.state, "faults", None)
    if faults is None:
        faults = request.app.state.faults = Faults()
    return faults


@router.post("/block")
async def block(
    _: TokenDep,
    seconds: Annotated[float, Query(gt=0, le=600)],
    repeat: Annotated[int, Query(ge=1, le=1000)] = 1,
    every: Annotated[float, Query(gt=0, le=600)] = 1.0,
) -> BlockReply:
    """Block the event loop with ``time.sleep`` (after this answer is sent), ``repeat`` times."""
    loop = asyncio.get_running_loop()
    for i in range(repeat):
        loop.call_later(0.05 + i * every, time.sleep, seconds)
    return {"status": "success", "blocking": seconds, "repeat": repeat, "every": every}


@router.post("/feed/pause")
async def pause_feed(request: Request, services: ServicesDep, _: TokenDep) -> FeedGateReply:
    """Stop delivering quotes while the feed stays connected."""
    faults = _faults(request)
    if faults.gate is None:
        faults.gate = FeedGate(services)
        faults.gate.paused = True
        # The runner binds ``cache.apply`` when a feed starts: shadow it, then restart.
        vars(services.cache)["apply"] = faults.gate
        await services.feed.restart()
    faults.gate.paused = True
    return {"status": "success", "paused": True}


@router.post("/feed/resume")
async def resume_feed(request: Request, _: TokenDep) -> FeedGateReply:
    faults = _faults(request)
    if faults.gate is not None:
        faults.gate.paused = False
    return {"status": "success", "paused": False}


@router.post("/ws-ticks/stop")
async def stop_ticks(request: Request, services: ServicesDep, _: TokenDep) -> TicksReply:
    """Stop fanning ticks out to WebSocket clients; HTTP and the cache carry on."""
    faults = _faults(request)
    services.cache.remove_listener(services.hub.publish_tick)
    faults.ticks_stopped = True
    return {"status": "success", "ticks": "stopped"}


@router.post("/ws-ticks/resume")
async def resume_ticks(request: Request, services: ServicesDep, _: TokenDep) -> TicksReply:
    faults = _faults(request)
    if faults.ticks_stopped:
        services.cache.add_listener(services.hub.publish_tick)
        faults.ticks_stopped = False
    return {"status": "success", "ticks": "flowing"}


def _spawn_holder() -> subprocess.Popen[bytes]:
    listening = [
        c.fd
        for c in psutil.Process().net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.fd >= 0
    ]
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)"],
        pass_fds=listening,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@router.post("/orphan")
async def orphan(request: Request, _: TokenDep) -> OrphanReply:
    """Start a child that inherits the listening socket and outlives this process."""
    holder = await asyncio.to_thread(_spawn_holder)
    _faults(request).holders.append(holder)
    return {"status": "success", "pid": holder.pid}
