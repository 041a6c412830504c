"""The cluster-mode checks of ``Settings`` (a mixin, to keep settings.py readable).

Each validator sees the fields declared before its own in ``Settings`` through
``info.data`` (``port``, ``backplane``, ``lease_ttl``...), as it would inside the class.
"""

from __future__ import annotations

import re
import socket

from pydantic import ValidationInfo, field_validator

from cotiza.settings_parts import PREFIX_RE, Role


class ClusterChecks:
    """ROLE, NODE_ID, NODE_URL, BACKPLANE_PREFIX and the lease and bus timings."""

    @field_validator("role", check_fields=False)
    @classmethod
    def _role(cls, value: Role, info: ValidationInfo) -> Role:
        if value is not Role.AUTO and "backplane" in info.data and not info.data["backplane"]:
            raise ValueError(f"ROLE={value} needs BACKPLANE (cluster mode)")
        return value

    @field_validator("node_id", check_fields=False)
    @classmethod
    def _node_id(cls, value: str | None, info: ValidationInfo) -> str:
        value = (value or "").strip() or f"{socket.gethostname()}:{info.data.get('port', 8000)}"
        if len(value) > 128 or any(c.isspace() for c in value):
            raise ValueError("expected up to 128 characters without spaces")
        return value

    @field_validator("node_url", check_fields=False)
    @classmethod
    def _node_url(cls, value: str | None, info: ValidationInfo) -> str:
        value = (value or "").strip()
        if not value:
            return f"http://{socket.gethostname()}:{info.data.get('port', 8000)}"
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("expected http://host:port")
        return value.rstrip("/")

    @field_validator("backplane_prefix", check_fields=False)
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not PREFIX_RE.match(value):
            raise ValueError("expected 1-64 characters among letters, digits and _ . : -")
        return value

    @field_validator("lease_renew_deadline", check_fields=False)
    @classmethod
    def _renew_deadline(cls, value: float, info: ValidationInfo) -> float:
        # A leader stops before its lease can expire, with one retry to spare.
        ttl, retry = info.data.get("lease_ttl"), info.data.get("lease_retry")
        if ttl is not None and retry is not None and not value < ttl - retry:
            raise ValueError(
                f"must be below LEASE_TTL - LEASE_RETRY ({ttl:g} - {retry:g} = {ttl - retry:g})"
            )
        return value

    @field_validator("bus_stale_after", check_fields=False)
    @classmethod
    def _stale_after(cls, value: float, info: ValidationInfo) -> float:
        heartbeat = info.data.get("bus_heartbeat")
        if heartbeat is not None and value <= heartbeat:
            raise ValueError(f"must exceed BUS_HEARTBEAT ({heartbeat:g})")
        return value
