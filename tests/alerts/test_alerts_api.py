"""The alert REST surface on a real service: CRUD, validation, token, restarts, WebSocket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alerts_kit import create_rule, history, wait_history
from support.poll import eventually
from support.server import live_service
from support.wsclient import collect, recv_until, send_json, ws_client

from cotiza.settings import Settings

pytestmark = pytest.mark.live


async def test_rule_crud_on_both_databases(
    make_settings: Callable[..., Settings], db_url: str
) -> None:
    """Create, read, list, edit and delete a rule on SQLite and PostgreSQL."""
    async with live_service(make_settings(database_url=db_url, feed_autostart=False)) as live:
        created = await create_rule(
            live, field="mid_ratio", op=">", value=1200.0, note=" mep alto "
        )
        assert created["id"] >= 1 and created["par"] == "AL30-AL30D"
        assert created["hysteresis"] == pytest.approx(1.2)  # 0.1 % of the level
        assert created["cooldown_s"] == live.settings.alert_default_cooldown
        assert created["state"] == "armed" and created["last_fired_at"] is None
        assert created["channels"] == ["ws"] and created["note"] == "mep alto"
        rule_id = created["id"]
        async with live.http() as http:
            fetched = (await http.get(f"/api/alerts/rules/{rule_id}")).json()
            assert fetched == created
            listing = (await http.get("/api/alerts/rules")).json()
            assert listing["count"] == 1 and listing["rules"][0]["id"] == rule_id
            assert (await http.get("/api/alerts/rules", params={"pair_id": 2})).json()["count"] == 0

            patched = await http.patch(
                f"/api/alerts/rules/{rule_id}",
                json={"op": "crosses_below", "value": 1100.5, "cooldown_s": 5, "hysteresis": 0.5},
            )
            assert patched.status_code == 200, patched.text
            body = patched.json()
            assert (body["op"], body["value"], body["cooldown_s"], body["hysteresis"]) == (
                "crosses_below",
                1100.5,
                5.0,
                0.5,
            )
            reset = await http.patch(f"/api/alerts/rules/{rule_id}", json={"hysteresis": None})
            assert reset.json()["hysteresis"] == pytest.approx(1.1005)

            assert (await http.delete(f"/api/alerts/rules/{rule_id}")).status_code == 204
            assert (await http.get(f"/api/alerts/rules/{rule_id}")).status_code == 404
            assert (await http.delete(f"/api/alerts/rules/{rule_id}")).status_code == 404
            assert (await http.patch(f"/api/alerts/rules/{rule_id}", json={})).status_code == 404


BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("unknown field", {"field": "price", "op": ">", "value": 1}),
    ("expression as field", {"field": "mid_ratio * 2", "op": ">", "value": 1}),
    ("unknown op", {"field": "mid_ratio", "op": "==", "value": 1}),
    ("op as code", {"field": "mid_ratio", "op": "lambda x: x > 1", "value": 1}),
    ("value as text", {"field": "mid_ratio", "op": ">", "value": "1.5"}),
    ("value as code", {"field": "mid_ratio", "op": ">", "value": "__import__('os').getpid()"}),
    ("missing value", {"field": "mid_ratio", "op": ">"}),
    ("negative cooldown", {"field": "mid_ratio", "op": ">", "value": 1, "cooldown_s": -1}),
    ("cooldown too long", {"field": "mid_ratio", "op": ">", "value": 1, "cooldown_s": 1e9}),
    ("negative hysteresis", {"field": "mid_ratio", "op": ">", "value": 1, "hysteresis": -0.1}),
    ("no channels", {"field": "mid_ratio", "op": ">", "value": 1, "channels": []}),
    ("unknown channel", {"field": "mid_ratio", "op": ">", "value": 1, "channels": ["sms"]}),
    ("webhook not configured", {"field": "z_bid", "op": ">", "value": 1, "channels": ["webhook"]}),
    (
        "telegram not configured",
        {"field": "z_bid", "op": ">", "value": 1, "channels": ["telegram"]},
    ),
    ("unknown pair", {"pair_id": 999, "field": "mid_ratio", "op": ">", "value": 1}),
    ("pair id as text", {"pair_id": "1", "field": "mid_ratio", "op": ">", "value": 1}),
    ("extra key", {"field": "mid_ratio", "op": ">", "value": 1, "expr": "mid_ratio > 1"}),
    ("note too long", {"field": "mid_ratio", "op": ">", "value": 1, "note": "x" * 201}),
]


async def test_bad_rules_get_422_and_nothing_is_evaluated(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Every bad field, operator or value is refused with 422 and no rule is stored."""
    marker = tmp_path / "evaluated"
    code = f"open({str(marker)!r}, 'w').write('x')"
    cases = [
        *BAD_BODIES,
        ("code in field", {"field": code, "op": ">", "value": 1}),
        ("code in value", {"field": "mid_ratio", "op": ">", "value": code}),
    ]
    async with live_service(make_settings(feed_autostart=False)) as live, live.http() as http:
        for name, body in cases:
            response = await http.post("/api/alerts/rules", json={"pair_id": 1, **body})
            assert response.status_code == 422, (name, response.text)
            assert "detail" in response.json(), name
        not_json = await http.post(
            "/api/alerts/rules", content=b"mid_ratio > 1", headers={"content-type": "text/plain"}
        )
        assert not_json.status_code == 422
        rule = await create_rule(live, field="mid_ratio", op=">", value=1.0)
        for body in ({"op": "!="}, {"value": "2"}, {"field": "eval"}, {"channels": ["ws", "x"]}):
            response = await http.patch(f"/api/alerts/rules/{rule['id']}", json=body)
            assert response.status_code == 422, (body, response.text)
        listing = (await http.get("/api/alerts/rules")).json()
        assert [r["id"] for r in listing["rules"]] == [rule["id"]]
        assert listing["rules"][0]["op"] == ">" and listing["rules"][0]["value"] == 1.0
        options = (await http.get("/api/alerts/options")).json()
        assert options["channels"] == {"ws": True, "webhook": False, "telegram": False}
        assert "z_bid" in options["fields"] and "crosses_above" in options["ops"]
    assert not marker.exists()


async def test_rule_writes_need_the_token(make_settings: Callable[..., Settings]) -> None:
    """With API_TOKEN set, creating, editing and deleting rules need it; reading does not."""
    settings = make_settings(feed_autostart=False, api_token="t0ken")
    body = {"pair_id": 1, "field": "mid_ratio", "op": ">", "value": 1.0}
    async with live_service(settings) as live, live.http() as http:
        assert (await http.post("/api/alerts/rules", json=body)).status_code == 401
        auth = {"Authorization": "Bearer t0ken"}
        created = await http.post("/api/alerts/rules", json=body, headers=auth)
        assert created.status_code == 201
        path = f"/api/alerts/rules/{created.json()['id']}"
        assert (await http.patch(path, json={"value": 2.0})).status_code == 401
        assert (await http.delete(path)).status_code == 401
        assert (await http.get(path)).status_code == 200
        assert (await http.get("/api/alerts/history")).status_code == 200
        assert (await http.patch(path, json={"value": 2.0}, headers=auth)).status_code == 200
        assert (await http.delete(path, headers=auth)).status_code == 204


async def test_a_holding_rule_fires_once_and_stays_fired_across_a_restart(
    make_settings: Callable[..., Settings],
) -> None:
    """A rule true at creation fires once; after a restart it neither re-fires nor forgets."""
    settings = make_settings()
    async with live_service(settings) as live:
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
        rule = await create_rule(live, field="mid_ratio", op=">", value=0.0, cooldown_s=0)
        fired = await wait_history(live, 1)
        assert fired[0]["rule_id"] == rule["id"] and fired[0]["observed"] > 0
        assert fired[0]["deliveries"] == {"ws": {"status": "delivered", "clients": 0}}
        publishes = live.services.ratios.publishes
        await eventually(lambda: live.services.ratios.publishes > publishes + 20)
        assert len(await history(live)) == 1
        async with live.http() as http:
            stored = (await http.get(f"/api/alerts/rules/{rule['id']}")).json()
        assert stored["state"] == "fired" and stored["last_fired_at"] == fired[0]["fired_at"]

    async with live_service(settings) as again:  # same SQLite file
        async with again.http() as http:
            after = (await http.get(f"/api/alerts/rules/{rule['id']}")).json()
        assert after == stored
        await eventually(lambda: again.services.ratios.publishes > 20)
        assert again.services.alerts.evaluators[rule["id"]].state.value == "fired"
        assert len(await history(again)) == 1


async def test_deleting_a_pair_deletes_its_rules_but_not_their_history(
    make_settings: Callable[..., Settings],
) -> None:
    """A pair's rules go with it; firings stay in the history, detached from the rule."""
    async with live_service(make_settings()) as live:
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
        rule = await create_rule(live, field="mid_ratio", op=">", value=0.0)
        await wait_history(live, 1)
        async with live.http() as http:
            assert (await http.delete("/api/ratios/pairs/1")).status_code == 204
            assert (await http.get(f"/api/alerts/rules/{rule['id']}")).status_code == 404
        assert rule["id"] not in live.services.alerts.evaluators
        (firing,) = await history(live)
        assert firing["rule_id"] is None and firing["par"] == "AL30-AL30D"


async def test_alert_frames_for_subscribers_only(make_settings: Callable[..., Settings]) -> None:
    """``subscribe_alerts`` brings ``alert`` frames; after ``unsubscribe_alerts`` none arrive."""
    async with live_service(make_settings()) as live, ws_client(live) as ws:
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
        await send_json(ws, {"type": "subscribe_alerts"})
        await recv_until(ws, lambda m: m["type"] == "alerts_subscribed")
        rule = await create_rule(live, field="mid_ratio", op=">", value=0.0, note="uno")
        frame = await recv_until(ws, lambda m: m["type"] == "alert")
        assert frame["rule_id"] == rule["id"] and frame["par"] == "AL30-AL30D"
        assert frame["field"] == "mid_ratio" and frame["op"] == ">" and frame["value"] == 0.0
        assert frame["observed"] > 0 and frame["note"] == "uno" and frame["id"] >= 1
        assert "Alerta #" in frame["text"]
        (firing,) = await wait_history(live, 1)
        assert firing["id"] == frame["id"]
        assert firing["deliveries"]["ws"] == {"status": "delivered", "clients": 1}

        await send_json(ws, {"action": "unsubscribe_alerts"})
        await recv_until(ws, lambda m: m["type"] == "alerts_unsubscribed")
        await create_rule(live, field="mid_ratio", op=">", value=0.0, note="dos")
        await wait_history(live, 2)
        frames = await collect(ws, 0.3)
        assert not [f for f in frames if f["type"] == "alert"]


async def test_engine_stops_and_starts_as_a_role_manager_would(
    make_settings: Callable[..., Settings],
) -> None:
    """Stopped, the engine evaluates nothing while rules are still stored; started again,
    it loads them and a rule that holds fires. Both calls are idempotent."""
    async with live_service(make_settings()) as live:
        engine = live.services.alerts
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
        await engine.stop()
        await engine.stop()
        assert not engine.running and not engine.evaluators
        rule = await create_rule(live, field="mid_ratio", op=">", value=0.0)
        publishes = live.services.ratios.publishes
        await eventually(lambda: live.services.ratios.publishes > publishes + 10)
        assert await history(live) == [] and engine.stats.fired == 0
        async with live.http() as http:
            check = (await http.get("/health/detailed")).json()["checks"]["alerts:engine"][0]
        assert check["status"] == "pass" and check["output"] == "not running"

        await engine.start()
        await engine.start()
        (firing,) = await wait_history(live, 1)
        assert firing["rule_id"] == rule["id"] and engine.stats.fired == 1


async def test_a_paused_rule_stays_silent_and_judges_afresh_when_resumed(
    make_settings: Callable[..., Settings],
) -> None:
    """PATCH active=false (the page's Pausar): no evaluator, no firing while its condition
    holds; active=true arms it and the condition is judged at once."""
    async with live_service(make_settings()) as live:
        await eventually(lambda: live.services.ratios.current(1)["mid_ratio"] is not None)
        rule = await create_rule(live, field="mid_ratio", op=">", value=1e12, cooldown_s=0)
        async with live.http() as http:
            paused = await http.patch(f"/api/alerts/rules/{rule['id']}", json={"active": False})
            assert paused.status_code == 200 and paused.json()["active"] is False
            # While paused, a level the ratio is always above: nothing may fire.
            changed = await http.patch(f"/api/alerts/rules/{rule['id']}", json={"value": 0.0})
            assert changed.status_code == 200 and changed.json()["active"] is False
        assert rule["id"] not in live.services.alerts.evaluators
        publishes = live.services.ratios.publishes
        await eventually(lambda: live.services.ratios.publishes > publishes + 20)
        assert await history(live) == []

        async with live.http() as http:
            resumed = await http.patch(f"/api/alerts/rules/{rule['id']}", json={"active": True})
            assert resumed.status_code == 200 and resumed.json()["active"] is True
        fired = await wait_history(live, 1)
        assert [f["rule_id"] for f in fired] == [rule["id"]]
