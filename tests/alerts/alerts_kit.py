"""Shared parts for alert and bot tests: a webhook receiver, settings, small helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from support.poll import eventually
from support.server import LiveService

from cotiza.ws.transport import listening_port

TOKEN = "123456789:AAE-test-token-for-the-fake-bot-api"
ALLOWED_CHAT = 1111
OTHER_ALLOWED_CHAT = -2222  # a group
FOREIGN_CHAT = 9999

# Alert settings that make retries quick; intervals short enough for tests.
FAST_ALERTS: dict[str, Any] = {
    "alert_retry_base": 0.05,
    "alert_retry_cap": 0.2,
    "alert_webhook_timeout": 2.0,
    "telegram_poll_timeout": 5.0,
    "telegram_backoff_base": 0.3,
    "telegram_backoff_cap": 1.0,
}


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        yield


@dataclass
class WebhookReceiver:
    """A real HTTP endpoint that answers 500 to its first ``fail_first`` POSTs.

    ``delay`` holds every answer back that long (a slow receiver).
    """

    fail_first: int = 0
    delay: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook/s3cr3t-path"

    async def _hook(self, request: Request) -> Response:
        self.bodies.append(orjson.loads(await request.body()))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = 500 if len(self.bodies) <= self.fail_first else 200
        self.statuses.append(status)
        return JSONResponse({"ok": status == 200}, status_code=status)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookReceiver]:
        app = Starlette(routes=[Route("/hook/s3cr3t-path", self._hook, methods=["POST"])])
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = _QuietServer(config)
        task = asyncio.create_task(server.serve())
        await eventually(lambda: server.started or task.done(), message="webhook receiver up")
        self.port = listening_port(server)
        try:
            yield self
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)


async def create_rule(live: LiveService, **body: Any) -> dict[str, Any]:
    """POST a rule (pair 1 and channel ws unless given); fail unless it is created."""
    payload = {"pair_id": 1, "channels": ["ws"], **body}
    async with live.http() as http:
        response = await http.post("/api/alerts/rules", json=payload)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()
    return rule


async def history(live: LiveService, **params: Any) -> list[dict[str, Any]]:
    async with live.http() as http:
        response = await http.get("/api/alerts/history", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def wait_history(live: LiveService, count: int, timeout: float = 15.0, **params: Any):
    """Poll the history until it has ``count`` firings whose deliveries are all settled."""
    found: list[dict[str, Any]] = []

    async def settled() -> bool:
        nonlocal found
        found = await history(live, **params)
        pending = [
            f for f in found if any(d["status"] == "pending" for d in f["deliveries"].values())
        ]
        return len(found) >= count and not pending

    await eventually(settled, timeout=timeout, interval=0.05, message=f"{count} settled firings")
    return found
