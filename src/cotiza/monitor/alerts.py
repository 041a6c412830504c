"""Alerts on restart, give-up and recovery: a JSON webhook and Telegram's ``sendMessage``.

Each alert is sent in the background with its own timeout. A failing or slow receiver
is logged and forgotten: alerts never delay or stop the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import httpx

log = logging.getLogger(__name__)

TELEGRAM_API = "https://api.telegram.org"


@dataclass(frozen=True)
class AlertConfig:
    webhook_url: str | None = None
    telegram_token: str | None = None
    telegram_chat_id: str | None = None
    telegram_api: str = TELEGRAM_API
    timeout: float = 5.0

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url or (self.telegram_token and self.telegram_chat_id))


@dataclass(frozen=True)
class Alert:
    """What happened; sent as the webhook's JSON body and as Telegram text."""

    event: str  # restart, gave_up, recovered
    port: int
    reason: str
    state: str
    pid: int | None = None
    restarts_in_window: int = 0
    host: str = field(default_factory=socket.gethostname)
    ts: float = field(default_factory=time.time)
    incident: str | None = None

    def text(self) -> str:
        head = {"restart": "restarting", "gave_up": "GAVE UP", "recovered": "recovered"}
        lines = [
            f"cotiza on {self.host}:{self.port}: {head.get(self.event, self.event)}",
            f"reason: {self.reason}",
            f"state: {self.state}, restarts in window: {self.restarts_in_window}",
        ]
        if self.pid:
            lines.append(f"pid: {self.pid}")
        if self.incident:
            lines.append(f"incident: {self.incident}")
        return "\n".join(lines)


class Alerter:
    """Sends alerts as tracked background tasks; ``close`` waits for them briefly."""

    def __init__(self, config: AlertConfig) -> None:
        self.config = config
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0

    def send(self, alert: Alert) -> None:
        if not self.config.enabled:
            return
        task = asyncio.create_task(self._send(alert), name=f"alert-{alert.event}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, alert: Alert) -> None:
        c = self.config
        async with httpx.AsyncClient() as http:
            jobs = []
            if c.webhook_url:
                jobs.append(self._post(http, "webhook", c.webhook_url, asdict(alert)))
            if c.telegram_token and c.telegram_chat_id:
                url = f"{c.telegram_api.rstrip('/')}/bot{c.telegram_token}/sendMessage"
                body = {"chat_id": c.telegram_chat_id, "text": alert.text()}
                jobs.append(self._post(http, "telegram", url, body))
            await asyncio.gather(*jobs)

    async def _post(
        self, http: httpx.AsyncClient, name: str, url: str, body: Mapping[str, object]
    ) -> None:
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await http.post(url, json=body, timeout=self.config.timeout)
            response.raise_for_status()
        except TimeoutError:
            self.failed += 1
            log.warning("%s alert timed out after %g s", name, self.config.timeout)
        except httpx.HTTPError as exc:
            self.failed += 1
            # The Telegram URL carries the bot token: never log it.
            log.warning("%s alert failed: %s", name, type(exc).__name__)
        else:
            self.sent += 1

    async def close(self, timeout: float | None = None) -> None:
        """Give pending alerts up to ``timeout`` seconds, then cancel them."""
        if not self._tasks:
            return
        pending = list(self._tasks)
        _, late = await asyncio.wait(pending, timeout=timeout or self.config.timeout)
        for task in late:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*late, return_exceptions=True)
