"""The OpenAPI document tells the truth: every JSON route's fields, errors and media types."""

from __future__ import annotations

from typing import Any

import pytest
from support.contract import DASHBOARD_ROW_FIELDS, TICK_FIELDS
from support.poll import eventually
from support.server import LiveService, live_service
from support.wsclient import recv_until, send_json, ws_client

from cotiza.storage.tables import RATIO_FIELDS

pytestmark = pytest.mark.live

# The fields each response had before the response models, as clients and the page use them.
FEED = {
    "state",
    "feed",
    "connection",
    "instruments",
    "started_at",
    "uptime",
    "last_tick_age",
    "starts",
    "last_error",
    "frames",
    "quotes",
    "reconnects",
    "errors",
    "last_feed_error",
    "counters",
}
HUB = {"active_connections", "max_connections", "dashboard_subscribers", "subscribed_symbols"}
WORKER = {
    "state",
    "running",
    "subscribers",
    "max_subscribers",
    "refresh_interval",
    "runs",
    "starts",
    "errors",
    "last_error",
    "cached_at",
    "started_at",
    "pinned",
}
CONNECTION = {
    "id",
    "path",
    "remote",
    "host",
    "port",
    "state",
    "connected_at",
    "write_path",
    "instruments",
    "instrument_count",
    "ratio_pairs",
    "dashboard",
    "everything",
    "pending",
    "pending_bytes",
    "backlog_bytes",
    "sent",
    "received",
    "coalesced",
}
HUB_COUNTERS = {
    "accepted",
    "rejected",
    "messages_sent",
    "messages_coalesced",
    "messages_dropped",
    "slow_consumers",
}
PAIR = {"id", "base", "quote", "factor", "client_id", "active", "par"}
RATIO = {"type", "pair_id", "par", "base", "quote", "factor", "client_id", "asof", *RATIO_FIELDS}
DASHBOARD_ROW = {"pair_id", "base", "quote", *DASHBOARD_ROW_FIELDS}
CHECK = {"status", "observedValue", "time", "affects"}  # plus observedUnit, output when set
DETAILED = {
    "status",
    "timestamp",
    "websocket_connections",
    "dashboard_subscribers",
    "dashboard_worker_running",
    "event_loop_available",
    "feed",
    "uptime",
    "checks",
    "origins",
    "cluster",
}
CLUSTER = {"role", "node_id", "leader", "leader_node", "epoch", "backplane"}
STATUS = FEED | {
    "workers",
    "dashboard",
    "connections",
    "cached_symbols",
    "market_open",
    "market_tz",
    "service_started_at",
    "service_uptime",
    "timestamp",
    # the prototype's names (issue 9)
    "started",
    "worker_running",
    "ws_connected",
    "worker_status",
    "ws_details",
    "user",
    "account",
}
AL30, AL30D = "MERV - XMEV - AL30 - 24hs", "MERV - XMEV - AL30D - 24hs"


def schema_of(doc: dict[str, Any], path: str, method: str, code: str) -> dict[str, Any]:
    content = doc["paths"][path][method]["responses"][code]["content"]
    ((media, body),) = content.items()
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = doc["components"]["schemas"][ref]
    schema["media"] = media
    return schema


def properties(doc: dict[str, Any], path: str, method: str = "get", code: str = "200") -> set[str]:
    return set(schema_of(doc, path, method, code)["properties"])


async def test_every_response_keeps_its_fields(service: LiveService) -> None:
    """Each JSON route answers exactly the fields it always had, nested ones included."""
    async with ws_client(service) as ws, service.http() as http:
        await send_json(ws, {"type": "subscribe", "instruments": [AL30]})
        await recv_until(ws, lambda m: m["type"] == "subscribed")

        async def get(path: str, **params: str) -> Any:
            response = await http.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            return response.json()

        async def stored() -> bool:
            history = await get("/api/ratios/history", base=AL30, quote=AL30D)
            return bool(history["count"])

        await eventually(stored, timeout=20, message="a stored AL30/AL30D sample")

        assert (await get("/cotizaciones/health")).keys() == {"status", "timestamp"}
        detailed = await get("/health/detailed")
        assert detailed.keys() == DETAILED and detailed["feed"].keys() == FEED
        assert detailed["cluster"].keys() == CLUSTER
        assert detailed["cluster"]["role"] == "standalone" and detailed["cluster"]["leader"]
        assert detailed["cluster"]["backplane"] == {"connected": False, "lag_ms": None}
        for entries in detailed["checks"].values():
            for entry in entries:
                assert CHECK <= entry.keys() <= CHECK | {"observedUnit", "output"}
        for path in ("/livez", "/readyz"):
            assert (await get(path)).keys() == {"status", "checks"}
        status = await get("/cotizaciones/status")
        assert status.keys() == STATUS
        assert status["dashboard"].keys() == WORKER and status["connections"].keys() == HUB
        sockets = await get("/cotizaciones/websocket_status")
        assert sockets.keys() == HUB | {"connections", "stats", "timestamp"}
        assert sockets["connections"][0].keys() == CONNECTION
        assert sockets["stats"].keys() == HUB_COUNTERS
        quotes = await get("/api/quotes")
        assert quotes.keys() == {"count", "quotes", "timestamp"}
        assert quotes["quotes"][0].keys() == TICK_FIELDS | {"mid", "recv_ts", "age", "stale"}
        assert (await get(f"/api/quotes/{AL30}")).keys() == TICK_FIELDS | {
            "mid",
            "recv_ts",
            "age",
            "stale",
        }
        pairs = await get("/api/ratios/pairs")
        assert pairs.keys() == {"count", "pairs"} and pairs["pairs"][0].keys() == PAIR
        assert (await get(f"/api/ratios/pairs/{pairs['pairs'][0]['id']}")).keys() == PAIR
        ratios = await get("/api/ratios")
        assert ratios.keys() == {"count", "data", "timestamp"}
        assert ratios["data"][0].keys() == RATIO
        history = await get("/api/ratios/history", base=AL30, quote=AL30D)
        assert history.keys() == {"pair", "from", "to", "resolution", "count", "data"}
        assert history["pair"].keys() == PAIR
        assert history["data"][0].keys() == {"asof", *RATIO_FIELDS}
        board = await get("/api/ratios/dashboard")
        assert board.keys() == {"status", "data", "count", "query_time_ms", "method", "freshness"}
        assert board["data"][0].keys() == DASHBOARD_ROW
        stopped = (await http.post("/cotizaciones/detener")).json()
        assert stopped.keys() == FEED | {"status", "message"}
        assert (await http.post("/admin/drain")).json().keys() == {"status", "closed"}


async def test_the_document_describes_fields_media_types_and_errors(service: LiveService) -> None:
    """Schemas list the same fields, health probes are health+json, errors are {"detail"}."""
    async with service.http() as http:
        doc = (await http.get("/openapi.json")).json()
    assert properties(doc, "/cotizaciones/health") == {"status", "timestamp"}
    assert properties(doc, "/health/detailed") == DETAILED | {"monitor"}
    assert properties(doc, "/cotizaciones/status") == STATUS
    assert properties(doc, "/cotizaciones/websocket_status") == HUB | {
        "connections",
        "stats",
        "timestamp",
    }
    assert properties(doc, "/api/quotes") == {"count", "quotes", "timestamp"}
    assert properties(doc, "/api/quotes/{symbol}") == TICK_FIELDS | {
        "mid",
        "recv_ts",
        "age",
        "stale",
    }
    assert properties(doc, "/api/ratios/pairs") == {"count", "pairs"}
    assert properties(doc, "/api/ratios/pairs", "post", "201") == PAIR
    assert properties(doc, "/api/ratios/pairs/{pair_id}", "patch") == PAIR
    assert properties(doc, "/api/ratios") == {"count", "data", "timestamp"}
    for board in ("", "/fast", "/balanced", "/flexible"):
        assert properties(doc, f"/api/ratios/dashboard{board}") == {
            "status",
            "data",
            "count",
            "query_time_ms",
            "method",
            "freshness",
        }
    control = FEED | {"status", "message", "leader_node", "control_version"}  # last two: cluster
    assert properties(doc, "/cotizaciones/iniciar", "post") == control
    assert properties(doc, "/admin/drain", "post") == {"status", "closed"}
    assert properties(doc, "/admin/handover", "post") == {"status", "message", "node_id", "epoch"}
    for path in ("/livez", "/readyz"):
        for code in ("200", "503"):
            assert schema_of(doc, path, "get", code)["media"] == "application/health+json"
        assert properties(doc, path) == {"status", "checks", "output"}
    assert "503" in doc["paths"]["/health/detailed"]["get"]["responses"]
    errors = {
        ("/cotizaciones/iniciar", "post"): {"401", "422"},
        ("/cotizaciones/detener", "post"): {"401"},
        ("/admin/drain", "post"): {"401"},
        ("/api/quotes/{symbol}", "get"): {"404"},
        ("/api/ratios/pairs", "post"): {"401", "409", "422", "503"},
        ("/api/ratios/pairs/{pair_id}", "patch"): {"401", "404", "409", "422", "503"},
        ("/api/ratios/pairs/{pair_id}", "delete"): {"401", "404", "503"},
        ("/api/ratios/history", "get"): {"404", "422", "503"},
        ("/api/ratios/dashboard", "get"): {"503"},
    }
    for (path, method), codes in errors.items():
        documented = doc["paths"][path][method]["responses"]
        assert codes <= documented.keys(), (path, method)
        for code in codes:
            assert properties(doc, path, method, code) == {"detail"}, (path, method, code)


async def test_documented_errors_are_what_the_routes_answer(make_settings) -> None:
    """401, 404, 409 and 422 answers carry the documented {"detail": ...} body."""
    right = {"Authorization": "Bearer right-token"}
    async with live_service(make_settings(api_token="right-token")) as live:
        async with live.http(headers=right) as http:
            missing = await http.get("/api/ratios/pairs/999999")
            assert missing.status_code == 404 and isinstance(missing.json()["detail"], str)
            duplicate = await http.post("/api/ratios/pairs", json={"base": AL30, "quote": AL30D})
            assert duplicate.status_code == 409 and isinstance(duplicate.json()["detail"], str)
            invalid = await http.post("/cotizaciones/iniciar", json={"instrumentos": ["NOPE"]})
            assert invalid.status_code == 422 and isinstance(invalid.json()["detail"], str)
            malformed = await http.get("/api/ratios/pairs/abc")
            assert malformed.status_code == 422 and isinstance(malformed.json()["detail"], list)
        async with live.http(headers={"Authorization": "Bearer wrong"}) as http:
            refused = await http.post("/cotizaciones/detener")
        assert refused.status_code == 401 and refused.json().keys() == {"detail"}
