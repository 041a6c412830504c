"""Helpers for the browser tests: Chromium's settings and pages that record errors.

The live service, ports and settings come from ``tests/support``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import ConsoleMessage, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

__all__ = [
    "ARTIFACTS",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "OpenDashboard",
    "OpenPage",
]


@dataclass
class OpenPage:
    """A page on the dashboard and every error it reported."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def record_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def record_exception(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


OpenDashboard = Callable[..., Awaitable[OpenPage]]
