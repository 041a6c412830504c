"""Feed control: start, stop, restart; the drain used before a planned restart; handover.

Standalone, the feed is this process's. In cluster mode every command is recorded in the
control plane: the leader applies it at once, any other node answers 202 ``accepted``
and the leader applies it on the notification (or the slow poll).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.api.schemas import (
    ControlReply,
    DrainReply,
    HandoverReply,
    UndrainReply,
    error_responses,
)
from cotiza.cluster.control import FeedAction
from cotiza.errors import ConflictError

router = APIRouter(prefix="/cotizaciones", tags=["control"])

_START_ERRORS = error_responses(401, 422)


class StartRequest(BaseModel):
    instrumentos: list[str] = Field(default_factory=list, max_length=1000)


def _reply(services: ServicesDep, message: str) -> ControlReply:
    # The cluster-only keys (leader_node, control_version) are added by _clustered.
    reply: ControlReply = {"status": "success", "message": message, **services.feed.status()}  # type: ignore[typeddict-item]
    return reply


async def _clustered(
    services: ServicesDep,
    response: Response,
    action: FeedAction,
    instruments: Sequence[str],
    done: str,
) -> ControlReply | None:
    """Cluster mode: record the command; None when standalone (the caller applies it)."""
    node = services.cluster
    if node is None:
        return None
    if action is not FeedAction.STOP:
        services.feed.check_instruments(instruments)  # bad input: 422 here, not on the leader
    command = await node.submit_feed(action, instruments)
    if node.is_leader:
        reply = _reply(services, done)
    else:
        response.status_code = status.HTTP_202_ACCEPTED
        leader = node.leader_node
        message = f"accepted: forwarded to the leader {leader}" if leader else "accepted: no leader"
        reply = {**_reply(services, message), "status": "accepted"}
    reply["leader_node"] = node.node_id if node.is_leader else node.leader_node
    reply["control_version"] = command.version
    return reply


@router.post("/iniciar", responses=_START_ERRORS)
async def iniciar(
    services: ServicesDep, response: Response, _: TokenDep, body: StartRequest | None = None
) -> ControlReply:
    """Start the feed (optionally with explicit instruments); credentials come from settings."""
    instruments = body.instrumentos if body else []
    clustered = await _clustered(services, response, FeedAction.START, instruments, "feed started")
    if clustered is not None:
        return clustered
    started = await services.feed.start(instruments)
    return _reply(services, "feed started" if started else "feed already running")


@router.post("/iniciar_auto", responses=error_responses(401))
async def iniciar_auto(services: ServicesDep, response: Response, _: TokenDep) -> ControlReply:
    """Start the feed with the configured instruments."""
    clustered = await _clustered(services, response, FeedAction.START, [], "feed started")
    if clustered is not None:
        return clustered
    started = await services.feed.start(services.feed.configured_instruments())
    return _reply(services, "feed started" if started else "feed already running")


@router.post("/detener", responses=error_responses(401))
async def detener(services: ServicesDep, response: Response, _: TokenDep) -> ControlReply:
    """Stop the feed."""
    clustered = await _clustered(services, response, FeedAction.STOP, [], "feed stopped")
    if clustered is not None:
        return clustered
    stopped = await services.feed.stop()
    return _reply(services, "feed stopped" if stopped else "feed was not running")


@router.post("/reiniciar", responses=_START_ERRORS)
async def reiniciar(
    services: ServicesDep, response: Response, _: TokenDep, body: StartRequest | None = None
) -> ControlReply:
    """Restart the feed; works whether or not it ran before in this process."""
    instruments = body.instrumentos if body else []
    clustered = await _clustered(
        services, response, FeedAction.RESTART, instruments, "feed restarted"
    )
    if clustered is not None:
        return clustered
    await services.feed.restart(instruments)
    return _reply(services, "feed restarted")


admin = APIRouter(prefix="/admin", tags=["control"])


@admin.post("/drain", responses=error_responses(401))
async def drain(services: ServicesDep, _: TokenDep) -> DrainReply:
    """Close every WebSocket client with 1012 before a planned restart; refuse new ones."""
    return {"status": "success", "closed": await services.drain()}


@admin.post("/undrain", responses=error_responses(401))
async def undrain(services: ServicesDep, _: TokenDep) -> UndrainReply:
    """Undo a drain: accept WebSocket clients again and pass readiness."""
    undone = services.undrain()
    return {"status": "success", "draining": services.draining, "undone": undone}


@admin.post("/handover", responses=error_responses(401, 409))
async def handover(services: ServicesDep, _: TokenDep) -> HandoverReply:
    """Cluster leader: close upstream, then free the lease so another node takes over.

    Clients stay connected; this node follows the bus from now on. 409 on a node that
    does not lead, and standalone (there is nobody to hand over to).
    """
    node = services.cluster
    if node is None:
        raise ConflictError("standalone process (BACKPLANE unset): there is no cluster")
    epoch = node.epoch
    if not node.is_leader or not await node.handover():
        leader = node.leader_node
        raise ConflictError(f"{node.node_id} does not lead; the leader is {leader or 'unknown'}")
    return {
        "status": "success",
        "message": "upstream closed and lease released",
        "node_id": node.node_id,
        "epoch": epoch,
    }
