"""Fault knobs of the fake Primary server, and the bad frames it can inject."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MALFORMED_FRAMES: tuple[bytes, ...] = (
    b"{not json",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"type": "Md"}',
    b'{"type": "Md", "instrumentId": {"marketId": "ROFX", "symbol": 5}}',
    b"",
)
EMPTY_BOOK: dict[str, list[Any] | None] = {"BI": [], "OF": None, "LA": None, "OP": None, "CL": []}


@dataclass
class Faults:
    """Fault knobs. ``*_after`` knobs fire once, on the first connection reaching N frames."""

    close_after: int | None = None  # clean close with close_code after N frames
    close_code: int = 1001
    close_reason: str = "going away"
    drop_after: int | None = None  # TCP abort, no close frame, after N frames
    freeze_after: int | None = None  # no frames, no pongs, socket open, after N frames
    pause: bool = False  # no market data; pings still answered (data silence)
    reject_handshakes: int = 0  # the next N handshakes get 401
    unavailable: bool = False  # every handshake gets 503 (an outage)
    token_ttl: float | None = None  # tokens expire this many seconds after issue
    empty_books: bool = False  # Md frames with every entry empty or null

    def update(self, values: Mapping[str, Any]) -> None:
        """Set knobs by name (the ``/_fake/faults`` endpoint); unknown names raise KeyError."""
        names = {f.name: f for f in dataclasses.fields(self)}
        for name, value in values.items():
            if name not in names:
                raise KeyError(name)
            setattr(self, name, value)
