"""Ratio pairs (CRUD), live ratios, stored history and the dashboard table."""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.api.schemas import (
    PairList,
    PairView,
    PathId,
    RatioHistory,
    RatioList,
    error_responses,
)
from cotiza.errors import ConflictError, InvalidRequestError, NotFoundError
from cotiza.models import RatioPair, short_symbol, symbol_resolver
from cotiza.service import Services
from cotiza.ws.frames import DashboardTable

router = APIRouter(prefix="/api/ratios", tags=["ratios"])

_SYMBOL = Field(min_length=1, max_length=128)
# A unit multiplier (100, 0.01, ...): bounded, so that ratios and their squares stay finite
# (a factor of 1e300 overflowed the indicators and stopped every pair's sampling).
FACTOR_MIN, FACTOR_MAX = 1e-9, 1e9
_FACTOR = Field(1.0, ge=FACTOR_MIN, le=FACTOR_MAX)


class PairCreate(BaseModel):
    base: str = _SYMBOL
    quote: str = _SYMBOL
    factor: float = _FACTOR
    client_id: str = Field("default", min_length=1, max_length=64)
    active: bool = Field(True, strict=True)


class PairUpdate(BaseModel):
    factor: float | None = Field(None, ge=FACTOR_MIN, le=FACTOR_MAX)
    client_id: str | None = Field(None, min_length=1, max_length=64)
    active: bool | None = Field(None, strict=True)


def pair_view(pair: RatioPair) -> PairView:
    return {**pair.as_dict(), "par": pair.name}


def _symbols_of(services: ServicesDep, *names: str) -> tuple[list[str], list[str]]:
    """The full symbols ``names`` mean for the feed (short names resolved), and the unknown."""
    known = services.feed.known_symbols()
    if not known:  # nothing to check against yet (a replay before it ran)
        return [n.strip() for n in names], []
    resolve = symbol_resolver(known)
    found = [resolve(name) for name in names]
    unknown = [n.strip() for n, s in zip(names, found, strict=True) if s is None]
    return [s or n.strip() for n, s in zip(names, found, strict=True)], unknown


async def _ensure_unique_name(services: ServicesDep, candidate: RatioPair) -> None:
    """(par, client_id) names one pair: refuse a second pair that would read the same."""
    for pair in await services.repository.list_pairs():
        same = pair.name == candidate.name and pair.client_id == candidate.client_id
        if same and pair.id != candidate.id:
            raise ConflictError(
                f"pair {candidate.name!r} already exists for client {candidate.client_id!r}"
            )


@router.get("/pairs", responses=error_responses(503))
async def list_pairs(services: ServicesDep, active: bool | None = None) -> PairList:
    """Every ratio pair definition (``?active=true``: only the active ones)."""
    pairs = await services.repository.list_pairs(active_only=bool(active))
    return {"count": len(pairs), "pairs": [pair_view(p) for p in pairs]}


@router.get("/pairs/{pair_id}", responses=error_responses(404, 503))
async def get_pair(pair_id: PathId, services: ServicesDep) -> PairView:
    """One ratio pair definition."""
    return pair_view(await services.repository.get_pair(pair_id))


@router.post(
    "/pairs", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 409, 422, 503)
)
async def create_pair(body: PairCreate, services: ServicesDep, _: TokenDep) -> PairView:
    """Define a pair (``factor * base / quote`` for ``client_id``); live ratios follow at once."""
    (base, quote), unknown = _symbols_of(services, body.base, body.quote)
    if unknown:
        raise InvalidRequestError(f"unknown instruments: {', '.join(unknown)}")
    await _ensure_unique_name(services, RatioPair(0, base, quote, client_id=body.client_id))
    pair = await services.repository.create_pair(
        base, quote, body.factor, body.client_id, body.active
    )
    await _pairs_changed(services)
    return pair_view(pair)


@router.patch("/pairs/{pair_id}", responses=error_responses(401, 404, 409, 422, 503))
async def update_pair(
    pair_id: PathId, body: PairUpdate, services: ServicesDep, _: TokenDep
) -> PairView:
    """Change a pair's factor, client or active flag."""
    if body.client_id is not None:
        current = await services.repository.get_pair(pair_id)
        renamed = RatioPair(pair_id, current.base, current.quote, client_id=body.client_id)
        await _ensure_unique_name(services, renamed)
    pair = await services.repository.update_pair(
        pair_id, factor=body.factor, active=body.active, client_id=body.client_id
    )
    await _pairs_changed(services)
    return pair_view(pair)


@router.delete(
    "/pairs/{pair_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 503),
)
async def delete_pair(pair_id: PathId, services: ServicesDep, _: TokenDep) -> None:
    """Delete a pair and its stored history."""
    await services.repository.delete_pair(pair_id)
    await _pairs_changed(services)
    await services.alerts.reload()  # the pair's alert rules went with it


async def _pairs_changed(services: Services) -> None:
    """Reload the pairs here and, in cluster mode, tell every other node to reload them."""
    await services.ratios.reload_pairs()
    if services.cluster is not None:
        await services.cluster.pairs_changed()


@router.get("")
async def latest_ratios(services: ServicesDep) -> RatioList:
    """The live ratios and indicators of every active pair, computed now."""
    data = services.ratios.snapshot()
    return {"count": len(data), "data": data, "timestamp": time.time()}


_RESOLUTION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
# What the OpenAPI document promises for ``resolution`` (the parser also takes upper case).
RESOLUTION_PATTERN = r"^(|raw|\s*\d+(\.\d+)?\s*[smhdSMHD]?\s*)$"
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
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):  # "nan", "inf": no time at all
            raise InvalidRequestError(f"not a time: {value!r}")
        return number
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(f"not a time: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _matches(symbol: str, wanted: str) -> bool:
    folded = wanted.strip().casefold()
    return folded in (symbol.casefold(), short_symbol(symbol).casefold())


async def find_pair(
    services: ServicesDep,
    base: str | None,
    quote: str | None,
    client_id: str | None,
    par: str | None = None,
) -> RatioPair:
    """The pair named by ``par`` ("AL30-AL30D", "AL30 CI-AL30D CI") or by base and quote."""
    if par is None and (base is None or quote is None):
        raise InvalidRequestError("give 'par', or both 'base' and 'quote'")
    pairs = await services.repository.list_pairs()
    for pair in pairs:
        if client_id is not None and pair.client_id != client_id:
            continue
        if par is not None:
            found = pair.name.casefold() == par.strip().casefold()
        else:
            found = _matches(pair.base, base or "") and _matches(pair.quote, quote or "")
        if found:
            return pair
    raise NotFoundError(f"no ratio pair {par if par is not None else f'{base}/{quote}'}")


@router.get("/history", responses=error_responses(404, 422, 503))
async def history(
    services: ServicesDep,
    base: Annotated[str | None, Query(min_length=1)] = None,
    quote: Annotated[str | None, Query(min_length=1)] = None,
    par: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
    client_id: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    resolution: Annotated[str | None, Query(pattern=RESOLUTION_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 5000,
) -> RatioHistory:
    """Stored samples of a pair in [from, to), or their averages per ``resolution``.

    The pair is named by ``par`` (as in the dashboard rows) or by ``base`` and ``quote``
    (full or short symbols); ``client_id`` picks among pairs of several clients.
    """
    now = time.time()
    end = parse_time(to, now)
    start = parse_time(from_, end - 86_400)
    if start >= end:
        raise InvalidRequestError("'from' must be before 'to'")
    step = parse_resolution(resolution)
    pair = await find_pair(services, base, quote, client_id, par)
    rows = await services.repository.history(pair.id, start, end, step, limit)
    return {
        "pair": pair_view(pair),
        "from": start,
        "to": end,
        "resolution": step,
        "count": len(rows),
        "data": rows,
    }


@router.get("/dashboard", responses=error_responses(503))
async def dashboard(services: ServicesDep) -> DashboardTable:
    """The dashboard table of contract section 5, one row per active pair."""
    return await services.dashboard_query()
