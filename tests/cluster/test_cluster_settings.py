"""Cluster settings: defaults that keep the standalone process, and one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cotiza.errors import ConfigurationError
from cotiza.settings import Role, load_settings

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/cotiza"
SQLITE = "sqlite+aiosqlite:///./cotiza.db"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("BACKPLANE", "LEASE_", "BUS_", "NODE_", "ROLE", "DATABASE_URL")):
            monkeypatch.delenv(name)


def test_backplane_unset_is_the_standalone_process() -> None:
    """Without BACKPLANE the settings describe one standalone process, SQLite allowed."""
    settings = load_settings(database_url=SQLITE, port=8123)
    assert settings.backplane is None and not settings.cluster
    assert settings.role is Role.AUTO
    assert settings.node_id == f"{socket.gethostname()}:8123"
    assert settings.node_url == f"http://{socket.gethostname()}:8123"
    assert (settings.lease_ttl, settings.lease_renew_deadline, settings.lease_retry) == (6, 4, 1)
    assert (settings.bus_heartbeat, settings.bus_stale_after) == (1, 3)
    assert settings.primary_session_grace == 0
    assert settings.backplane_prefix == "cotiza"


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "redis://redis.internal:6380/15", "redis://:pw@10.0.0.5:6379/2"],
)
def test_backplane_accepts_redis_host_port_db(url: str) -> None:
    """redis://host:port/db (with optional credentials) turns cluster mode on."""
    settings = load_settings(backplane=url, database_url=PG, role="edge", node_id="n1")
    assert settings.backplane == url and settings.cluster
    assert settings.role is Role.EDGE and settings.node_id == "n1"


def test_backplane_password_is_redacted() -> None:
    """The backplane's password never appears in the settings shown to logs and endpoints."""
    settings = load_settings(backplane="redis://:hunter2@127.0.0.1:6379/0", database_url=PG)
    assert "hunter2" not in str(settings.redacted())
    assert settings.redacted()["backplane"] == "redis://:***@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("overrides", "variable", "fragment"),
    [
        (
            {"backplane": "redis://127.0.0.1:6379/0", "database_url": SQLITE},
            "BACKPLANE",
            "PostgreSQL",
        ),
        (
            {"backplane": "redis://127.0.0.1:6379", "database_url": PG},
            "BACKPLANE",
            "redis://host:port/db",
        ),
        (
            {"backplane": "redis://127.0.0.1/0", "database_url": PG},
            "BACKPLANE",
            "redis://host:port/db",
        ),
        ({"backplane": "http://127.0.0.1:6379/0", "database_url": PG}, "BACKPLANE", "redis://"),
        ({"backplane": "redis://127.0.0.1:99999/0", "database_url": PG}, "BACKPLANE", "redis://"),
        ({"role": "edge"}, "ROLE", "needs BACKPLANE"),
        ({"role": "leader"}, "ROLE", "auto"),
        ({"lease_ttl": 0}, "LEASE_TTL", "greater than 0"),
        ({"lease_retry": -1}, "LEASE_RETRY", "greater than 0"),
        ({"lease_renew_deadline": 5}, "LEASE_RENEW_DEADLINE", "LEASE_TTL - LEASE_RETRY"),
        (
            {"lease_ttl": 3, "lease_retry": 1, "lease_renew_deadline": 2.5},
            "LEASE_RENEW_DEADLINE",
            "(3 - 1 = 2)",
        ),
        ({"bus_heartbeat": 0}, "BUS_HEARTBEAT", "greater than 0"),
        ({"bus_stale_after": 1}, "BUS_STALE_AFTER", "BUS_HEARTBEAT"),
        ({"primary_session_grace": -0.5}, "PRIMARY_SESSION_GRACE", "greater than or equal to 0"),
        ({"backplane_prefix": "my prefix"}, "BACKPLANE_PREFIX", "letters"),
        ({"node_id": "a b"}, "NODE_ID", "without spaces"),
        ({"node_url": "ftp://x"}, "NODE_URL", "http://"),
    ],
)
def test_invalid_cluster_settings_name_the_variable(
    overrides: dict[str, object], variable: str, fragment: str
) -> None:
    """Each invalid value is refused with one line naming its variable."""
    with pytest.raises(ConfigurationError) as error:
        load_settings(**overrides)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"invalid configuration: {variable}: "), message
    assert fragment in message, message


def test_renew_deadline_just_below_ttl_minus_retry_is_accepted() -> None:
    """The invariant is strict but nothing more: 4.9 < 6 - 1 passes."""
    assert load_settings(lease_renew_deadline=4.9).lease_renew_deadline == 4.9


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BACKPLANE": "redis://127.0.0.1:6379/0"}, "BACKPLANE"),
        ({"LEASE_RENEW_DEADLINE": "9"}, "LEASE_RENEW_DEADLINE"),
        ({"ROLE": "feeder"}, "ROLE"),
    ],
)
def test_cotiza_serve_exits_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    """``cotiza serve`` stops before starting anything: exit 2 and one line naming the variable."""
    environ = {k: v for k, v in os.environ.items() if k not in {"PORT", "HOST", "BACKPLANE"}}
    environ.update(DATABASE_URL=f"sqlite:///{tmp_path}/cotiza.db", **env)
    proc = subprocess.run(
        [sys.executable, "-m", "cotiza", "serve", "--port", "0"],
        check=False,
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"invalid configuration: {variable}:" in lines[0]
    assert not (tmp_path / "cotiza.db").exists()  # nothing was started
