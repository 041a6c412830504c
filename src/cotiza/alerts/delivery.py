"""Delivering firings off the tick path: the webhook sender, with retries and backoff.

Every attempt has its own timeout; failures that may pass (connection errors, timeouts,
5xx, 408, 429) are retried after a growing, jittered delay, up to a number of attempts.
The result says what happened without ever quoting the URL, which may carry a secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cotiza.feeds.reconnect import backoff_delays
from cotiza.settings import Settings

log = logging.getLogger(__name__)

_RETRYABLE = frozenset({408, 425, 429})


@dataclass(slots=True)
class DeliveryResult:
    """What one channel did with one firing; stored with the firing as JSON."""

    status: str  # delivered, failed, partial, not_configured, unavailable
    attempts: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        item: dict[str, Any] = {"status": self.status}
        if self.attempts:
            item["attempts"] = self.attempts
        if self.error:
            item["error"] = self.error
        item.update(self.detail)
        return item


def retryable_status(status: int) -> bool:
    return status >= 500 or status in _RETRYABLE


async def with_retries(
    attempt: Callable[[], Awaitable[None]],
    classify: Callable[[Exception], tuple[bool, str, float | None]],
    attempts: int,
    base: float,
    cap: float,
) -> DeliveryResult:
    """Run ``attempt`` until it succeeds or ``attempts`` are used up.

    ``classify`` turns a failure into (retry it?, a short description, a delay the
    receiver asked for or None).
    """
    delays = backoff_delays(base, cap)
    error = "not attempted"
    for number in range(1, attempts + 1):
        try:
            await attempt()
        except Exception as exc:  # classified below; a bug shows as a non-retryable failure
            retry, error, asked = classify(exc)
            if not retry or number == attempts:
                return DeliveryResult("failed", number, error)
            delay = next(delays)
            await asyncio.sleep(min(cap, max(delay, asked or 0.0)))
        else:
            return DeliveryResult("delivered", number)
    return DeliveryResult("failed", attempts, error)


class WebhookSender:
    """POSTs one JSON body per firing to ``ALERT_WEBHOOK_URL``; owns its HTTP client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        secret = settings.alert_webhook_url
        self._url = secret.get_secret_value() if secret is not None else None
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.failed = 0

    @property
    def configured(self) -> bool:
        return self._url is not None

    async def start(self) -> None:
        if self._client is None and self._url is not None:
            timeout = self.settings.alert_webhook_timeout
            self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(self, payload: Mapping[str, object]) -> DeliveryResult:
        client, url = self._client, self._url
        if url is None:
            return DeliveryResult("not_configured")
        if client is None:
            return DeliveryResult("unavailable", error="webhook sender not started")
        s = self.settings

        async def attempt() -> None:
            async with asyncio.timeout(s.alert_webhook_timeout):
                response = await client.post(url, json=payload)
            if response.status_code >= 300:
                raise _Rejected(response.status_code, _retry_after(response))

        result = await with_retries(
            attempt, _classify, s.alert_webhook_attempts, s.alert_retry_base, s.alert_retry_cap
        )
        if result.status == "delivered":
            self.sent += 1
        else:
            self.failed += 1
            log.warning("alert webhook failed after %d attempts: %s", result.attempts, result.error)
        return result


class _Rejected(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    if isinstance(exc, _Rejected):
        return retryable_status(exc.status), f"HTTP {exc.status}", exc.retry_after
    if isinstance(exc, TimeoutError):
        return True, "timed out", None
    if isinstance(exc, httpx.TransportError):
        # The exception's text may quote the URL: only its kind is kept.
        return True, type(exc).__name__, None
    log.error("alert webhook: unexpected %s", type(exc).__name__, exc_info=exc)
    return False, type(exc).__name__, None
