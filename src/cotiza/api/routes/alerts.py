"""Market alert rules (CRUD), the history of firings, and what a rule may use."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from cotiza.alerts.rules import AlertField, AlertOp, AlertRule, Channel, default_hysteresis
from cotiza.api.deps import ServicesDep, TokenDep
from cotiza.api.schemas import DB_ID_MAX, PathId, QueryId, error_responses
from cotiza.errors import InvalidRequestError
from cotiza.service import Services
from cotiza.storage.alerts import StoredRule

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_COOLDOWN = 7 * 86_400.0
# Numbers must be JSON numbers (no "1.5" strings) and finite: nothing is ever parsed or
# evaluated out of text.
_Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_Margin = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
_Cooldown = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_COOLDOWN)]
_Channels = Annotated[list[Channel], Field(min_length=1, max_length=len(Channel))]


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pair_id: int = Field(strict=True, ge=1, le=DB_ID_MAX)
    field: AlertField
    op: AlertOp
    value: _Number
    hysteresis: _Margin | None = None  # default: see rules.default_hysteresis
    cooldown_s: _Cooldown | None = None  # default: ALERT_DEFAULT_COOLDOWN
    channels: _Channels = Field(default_factory=lambda: [Channel.WS])
    active: bool = Field(True, strict=True)
    note: str = Field("", max_length=200)


class RuleUpdate(BaseModel):
    """Any subset of a rule; ``"hysteresis": null`` goes back to the default margin."""

    model_config = ConfigDict(extra="forbid")

    pair_id: int | None = Field(None, strict=True, ge=1, le=DB_ID_MAX)
    field: AlertField | None = None
    op: AlertOp | None = None
    value: _Number | None = None
    hysteresis: _Margin | None = None
    cooldown_s: _Cooldown | None = None
    channels: _Channels | None = None
    active: bool | None = Field(None, strict=True)
    note: str | None = Field(None, max_length=200)


def _check_channels(services: Services, channels: list[Channel]) -> tuple[Channel, ...]:
    settings = services.settings
    if Channel.WEBHOOK in channels and settings.alert_webhook_url is None:
        raise InvalidRequestError("channel 'webhook' needs ALERT_WEBHOOK_URL to be configured")
    if Channel.TELEGRAM in channels and not settings.telegram_enabled:
        raise InvalidRequestError(
            "channel 'telegram' needs TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_IDS to be configured"
        )
    return tuple(dict.fromkeys(channels))


async def _pair_name(services: Services, pair_id: int) -> str:
    pair = await services.alert_store.pair(pair_id)
    if pair is None:
        raise InvalidRequestError(f"ratio pair {pair_id} does not exist")
    return pair.name


def rule_out(stored: StoredRule, pair_name: str | None) -> dict[str, Any]:
    rule = stored.rule
    return {
        "id": rule.id,
        "pair_id": rule.pair_id,
        "par": pair_name,
        "field": rule.field.value,
        "op": rule.op.value,
        "value": rule.value,
        "hysteresis": rule.hysteresis,
        "cooldown_s": rule.cooldown_s,
        "channels": [channel.value for channel in rule.channels],
        "active": rule.active,
        "note": rule.note,
        "state": stored.state.value,
        "last_fired_at": stored.last_fired_at,
        "created_at": stored.created_at,
        "updated_at": stored.updated_at,
    }


async def _names(services: Services) -> dict[int, str]:
    return {p.id: p.name for p in await services.repository.list_pairs()}


@router.get("/options")
async def options(services: ServicesDep) -> dict[str, Any]:
    """What a rule may name, which channels are configured, and the defaults."""
    settings = services.settings
    return {
        "fields": [f.value for f in AlertField],
        "ops": [o.value for o in AlertOp],
        "channels": {
            Channel.WS.value: True,
            Channel.WEBHOOK.value: settings.alert_webhook_url is not None,
            Channel.TELEGRAM.value: settings.telegram_enabled,
        },
        "default_cooldown_s": settings.alert_default_cooldown,
        "max_cooldown_s": MAX_COOLDOWN,
    }


@router.get("/rules", responses=error_responses(422, 503))
async def list_rules(services: ServicesDep, pair_id: QueryId = None) -> dict[str, Any]:
    stored = await services.alert_store.list_rules(pair_id)
    names = await _names(services)
    rules = [rule_out(item, names.get(item.rule.pair_id)) for item in stored]
    return {"count": len(rules), "rules": rules}


@router.get("/rules/{rule_id}", responses=error_responses(404, 422, 503))
async def get_rule(rule_id: PathId, services: ServicesDep) -> dict[str, Any]:
    stored = await services.alert_store.get_rule(rule_id)
    names = await _names(services)
    return rule_out(stored, names.get(stored.rule.pair_id))


@router.post(
    "/rules", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 422, 503)
)
async def create_rule(body: RuleCreate, services: ServicesDep, _: TokenDep) -> dict[str, Any]:
    channels = _check_channels(services, body.channels)
    name = await _pair_name(services, body.pair_id)
    hysteresis = body.hysteresis
    if hysteresis is None:
        hysteresis = default_hysteresis(body.field, body.value)
    cooldown = body.cooldown_s
    if cooldown is None:
        cooldown = services.settings.alert_default_cooldown
    rule = AlertRule(
        id=0,
        pair_id=body.pair_id,
        field=body.field,
        op=body.op,
        value=body.value,
        hysteresis=hysteresis,
        cooldown_s=cooldown,
        channels=channels,
        active=body.active,
        note=body.note.strip(),
    )
    stored = await services.alert_store.create_rule(rule)
    services.alerts.upsert(stored)  # a condition that already holds fires now
    await _rules_changed(services)
    return rule_out(stored, name)


@router.patch("/rules/{rule_id}", responses=error_responses(401, 404, 422, 503))
async def update_rule(
    rule_id: PathId, body: RuleUpdate, services: ServicesDep, _: TokenDep
) -> dict[str, Any]:
    current = (await services.alert_store.get_rule(rule_id)).rule
    given = body.model_fields_set
    changes: dict[str, Any] = {
        key: getattr(body, key)
        for key in given
        if getattr(body, key) is not None and key not in {"channels", "note"}
    }
    if body.channels is not None:
        changes["channels"] = _check_channels(services, body.channels)
    if body.note is not None:
        changes["note"] = body.note.strip()
    rule = dataclasses.replace(current, **changes)
    if "hysteresis" in given and body.hysteresis is None:
        rule = dataclasses.replace(rule, hysteresis=default_hysteresis(rule.field, rule.value))
    name = await _pair_name(services, rule.pair_id)
    reset = not rule.same_condition(current)
    stored = await services.alert_store.replace_rule(rule, reset=reset)
    services.alerts.upsert(stored)
    await _rules_changed(services)
    return rule_out(stored, name)


@router.delete(
    "/rules/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
async def delete_rule(rule_id: PathId, services: ServicesDep, _: TokenDep) -> None:
    await services.alert_store.delete_rule(rule_id)
    services.alerts.discard(rule_id)
    await _rules_changed(services)


async def _rules_changed(services: Services) -> None:
    """Cluster mode: the leader's alert engine (maybe on another node) reloads the rules."""
    if services.cluster is not None:
        await services.cluster.pairs_changed()


@router.get("/history", responses=error_responses(422, 503))
async def history(
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100,
    rule_id: QueryId = None,
    pair_id: QueryId = None,
    before: Annotated[float | None, Query(allow_inf_nan=False)] = None,
) -> dict[str, Any]:
    """Fired alerts, newest first, with what was delivered where."""
    limit = min(limit, services.settings.alert_history_limit)
    data = await services.alert_store.history(limit, rule_id, pair_id, before)
    return {"count": len(data), "data": data}
