"""Helpers for the browser tests: Chromium's settings, free ports, pages that record errors.

The live-service harness of the API tests is reused as is; its folder is put on the path
here because these tests also run on their own (``pytest tests/browser``).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import ConsoleMessage, Page

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from live import FAST, LiveService, free_port, live_service

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
    "FAST",
    "LiveService",
    "OpenDashboard",
    "OpenPage",
    "free_port",
    "live_service",
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
