"""Which browser origins may use the service: one rule for WebSockets, CORS and writes.

A request without ``Origin`` is not from a browser page and is always allowed. A page
served by this service (same host) is allowed. Any other origin must be listed in
``ALLOWED_ORIGINS`` (``http://host:port``, comma-separated), or the setting must be ``*``
(explicitly: any origin, for trusted networks). Each refused origin is logged once, naming
the setting to change, and counted so ``/health/detailed`` and ``diagnose`` can say so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from typing_extensions import TypedDict

log = logging.getLogger(__name__)

ANY = "*"
MAX_REMEMBERED = 100  # distinct refused origins kept (and logged); a flood cannot grow it
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise(origin: str) -> str:
    """``HTTP://Host:80/`` -> ``http://host``: scheme and host in lower case, default port
    and trailing slash dropped. Raises ``ValueError`` for anything but scheme://host[:port]."""
    text = origin.strip().rstrip("/")
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path or parts.query:
        raise ValueError(f"{origin!r} is not an origin such as http://host:port")
    if parts.username or parts.password:
        raise ValueError(f"{origin!r}: an origin carries no user or password")
    port = parts.port  # raises ValueError for a port that is not a number or out of range
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def validate(values: Sequence[str]) -> list[str]:
    """The ``ALLOWED_ORIGINS`` entries, normalised; ``*`` kept as is. ``ValueError`` if bad."""
    return [ANY if v.strip() == ANY else normalise(v) for v in values if v.strip()]


class RefusedOrigin(TypedDict):
    origin: str
    count: int
    last: float
    where: str  # "websocket", "cors" or "write": what it tried


class OriginsReport(TypedDict):
    """``/health/detailed``'s ``origins``: the rule in force and what it refused."""

    allowed: list[str]
    same_host: bool
    refused: list[RefusedOrigin]


class OriginPolicy:
    """The one origin rule of the process (``ALLOWED_ORIGINS``), with its refusals."""

    def __init__(self, allowed: Sequence[str]) -> None:
        entries = validate(allowed)
        self.any = ANY in entries
        self.allowed = frozenset(e for e in entries if e != ANY)
        self._refused: dict[str, RefusedOrigin] = {}

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True for no ``Origin`` (not a browser), a same-host page, a listed origin, or ``*``."""
        if origin is None or self.any:
            return True
        try:
            wanted = normalise(origin)
        except ValueError:
            return False  # "null" (a file:// page, a sandbox) or garbage: never listed
        if wanted in self.allowed:
            return True
        return host is not None and urlsplit(wanted).netloc == _host_of(wanted, host)

    def allows_cross_origin(self, origin: str) -> bool:
        """For CORS: ``origin`` is listed (or ``*``); a same-host page needs no CORS."""
        return self.allows(origin, None)

    def refused(self, origin: str, where: str) -> None:
        """Note a refusal; the first of each origin is logged with the setting to change."""
        key = origin[:200]
        entry = self._refused.get(key)
        if entry is not None:
            entry["count"] += 1
            entry["last"] = time.time()
            return
        if len(self._refused) >= MAX_REMEMBERED:
            return
        self._refused[key] = {"origin": key, "count": 1, "last": time.time(), "where": where}
        log.warning(
            "refused a browser page from origin %r (%s): to allow it set "
            "ALLOWED_ORIGINS=%s (comma-separated; * allows any origin)",
            key,
            where,
            key,
        )

    def report(self) -> OriginsReport:
        allowed = [ANY] if self.any else sorted(self.allowed)
        refused = sorted(self._refused.values(), key=lambda r: -r["last"])
        return {"allowed": allowed, "same_host": True, "refused": [r.copy() for r in refused]}


def _host_of(origin: str, host: str) -> str:
    """The ``Host`` header in the origin's normal form (default port dropped)."""
    scheme = urlsplit(origin).scheme
    try:
        return urlsplit(normalise(f"{scheme}://{host.strip()}")).netloc
    except ValueError:
        return host.strip().lower()
