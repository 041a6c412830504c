"""Ratio pairs (CRUD), live ratios, stored history and the dashboard table."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.errors import InvalidRequestError, NotFoundError
from cotiza.models import RatioPair, short_symbol

router = APIRouter(prefix="/api/ratios", tags=["ratios"])

_SYMBOL = Field(min_length=1, max_length=128)


class PairCreate(BaseModel):
    base: str = _SYMBOL
    quote: str = _SYMBOL
    factor: float = Field(1.0, gt=0)
    client_id: str = Field("default", min_length=1, max_length=64)
    active: bool = True


class PairUpdate(BaseModel):
    factor: float | None = Field(None, gt=0)
    client_id: str | None = Field(None, min_length=1, max_length=64)
    active: bool | None = None


@router.get("/pairs")
async def list_pairs(services: ServicesDep, active: bool | None = None) -> dict[str, Any]:
    pairs = await services.repository.list_pairs(active_only=bool(active))
    return {"count": len(pairs), "pairs": [p.as_dict() | {"par": p.name} for p in pairs]}


@router.get("/pairs/{pair_id}")
async def get_pair(pair_id: int, services: ServicesDep) -> dict[str, Any]:
    pair = await services.repository.get_pair(pair_id)
    return pair.as_dict() | {"par": pair.name}


@router.post("/pairs", status_code=status.HTTP_201_CREATED)
async def create_pair(body: PairCreate, services: ServicesDep, _: TokenDep) -> dict[str, Any]:
    pair = await services.repository.create_pair(
        body.base.strip(), body.quote.strip(), body.factor, body.client_id, body.active
    )
    await services.ratios.reload_pairs()
    return pair.as_dict() | {"par": pair.name}


@router.patch("/pairs/{pair_id}")
async def update_pair(
    pair_id: int, body: PairUpdate, services: ServicesDep, _: TokenDep
) -> dict[str, Any]:
    pair = await services.repository.update_pair(
        pair_id, factor=body.factor, active=body.active, client_id=body.client_id
    )
    await services.ratios.reload_pairs()
    return pair.as_dict() | {"par": pair.name}


@router.delete("/pairs/{pair_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_pair(pair_id: int, services: ServicesDep, _: TokenDep) -> None:
    await services.repository.delete_pair(pair_id)
    await services.ratios.reload_pairs()
    await services.alerts.reload()  # the pair's alert rules went with it


@router.get("")
async def latest_ratios(services: ServicesDep) -> dict[str, Any]:
    data = services.ratios.snapshot()
    return {"count": len(data), "data": data, "timestamp": time.time()}


_RESOLUTION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_resolution(value: str | None) -> float | None:
    """``"300"``, ``"5m"``, ``"1h"`` -> seconds; ``None`` or ``"raw"`` -> no downsampling."""
    if value is None or value in ("", "raw"):
        return None
    match = _RESOLUTION.match(value.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise InvalidRequestError("resolution must be seconds or a number with s, m, h or d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_time(value: str | None, default: float) -> float:
    """Epoch seconds or ISO 8601 (naive times are UTC)."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"not a time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _matches(symbol: str, wanted: str) -> bool:
    return wanted in (symbol, short_symbol(symbol))


async def find_pair(
    services: ServicesDep, base: str, quote: str, client_id: str | None
) -> RatioPair:
    pairs = await services.repository.list_pairs()
    for pair in pairs:
        same_client = client_id is None or pair.client_id == client_id
        if _matches(pair.base, base) and _matches(pair.quote, quote) and same_client:
            return pair
    raise NotFoundError(f"no ratio pair {base}/{quote}")


@router.get("/history")
async def history(
    services: ServicesDep,
    base: Annotated[str, Query(min_length=1)],
    quote: Annotated[str, Query(min_length=1)],
    client_id: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    resolution: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 5000,
) -> dict[str, Any]:
    now = time.time()
    end = parse_time(to, now)
    start = parse_time(from_, end - 86_400)
    if start >= end:
        raise InvalidRequestError("'from' must be before 'to'")
    step = parse_resolution(resolution)
    pair = await find_pair(services, base, quote, client_id)
    rows = await services.repository.history(pair.id, start, end, step, limit)
    return {
        "pair": pair.as_dict() | {"par": pair.name},
        "from": start,
        "to": end,
        "resolution": step,
        "count": len(rows),
        "data": rows,
    }


@router.get("/dashboard")
async def dashboard(services: ServicesDep) -> dict[str, Any]:
    return await services.dashboard_query()
