"""The cluster deploy example: HAProxy accepts its config; the units say what the README says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cotiza.settings import Settings

CLUSTER = Path(__file__).resolve().parents[2] / "deploy" / "cluster"


def unit(name: str) -> dict[str, list[str]]:
    """A systemd unit as {section: ["Key=value", ...]} (keys may repeat, as systemd allows)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in (CLUSTER / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
        else:
            assert "=" in line, f"{name}: not a Key=value line: {line!r}"
            sections[current].append(line)
    return sections


def values(section: list[str], key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in section if line.split("=", 1)[0] == key]


@pytest.mark.subprocess
def test_haproxy_accepts_the_config() -> None:
    """``haproxy -c -f`` (Debian's haproxy, installed by scripts/dev test) says it is valid."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), "haproxy is missing: scripts/dev test installs it"
    done = subprocess.run(
        [haproxy, "-c", "-f", str(CLUSTER / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "valid" in (done.stdout + done.stderr).lower()


def test_haproxy_config_balances_websockets_by_readiness() -> None:
    """leastconn, /readyz checks, a tunnel timeout above the keepalive, one server per node."""
    text = (CLUSTER / "haproxy.cfg").read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "balance leastconn" in lines
    assert "option httpchk GET /readyz" in lines
    assert "http-check expect status 200" in lines
    tunnel = next(line for line in lines if line.startswith("timeout tunnel"))
    value = re.fullmatch(r"timeout tunnel (\d+)(s|m|h)", tunnel)
    assert value is not None, tunnel
    seconds = int(value.group(1)) * {"s": 1, "m": 60, "h": 3600}[value.group(2)]
    keepalive = Settings.model_fields["ws_keepalive_interval"].default
    assert seconds > 2 * keepalive
    servers = [line for line in lines if line.startswith("server ")]
    assert len(servers) >= 2 and all(line.endswith(" check") for line in servers)
    assert not any(line.startswith(("stick", "cookie", "balance source")) for line in lines)


def test_node_template_runs_one_process_per_port() -> None:
    """cotiza@.service: the port from the instance, shared plus per-port settings, LimitNOFILE."""
    node = unit("cotiza@.service")
    service = node["Service"]
    (start,) = values(service, "ExecStart")
    assert start.endswith("main.py --host 0.0.0.0 --port %i")
    assert int(values(service, "LimitNOFILE")[0]) >= 65536
    assert values(service, "EnvironmentFile") == [
        "/etc/cotiza/cluster.env",
        "-/etc/cotiza/cotiza-%i.env",
    ]
    assert "NODE_ID=%H:%i" in values(service, "Environment")
    assert values(service, "Type") == ["notify"] and values(service, "KillMode") == ["mixed"]
    assert values(node["Install"], "WantedBy") == ["multi-user.target"]


def test_monitor_template_reloads_through_the_monitor() -> None:
    """cotiza-monitor@.service: the monitor on the instance's port; reload is its SIGHUP."""
    service = unit("cotiza-monitor@.service")["Service"]
    (start,) = values(service, "ExecStart")
    assert "monitor_service.py --port %i --" in start
    assert values(service, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert int(values(service, "LimitNOFILE")[0]) >= 65536
    assert values(service, "RestartPreventExitStatus") == ["3"]


def test_the_shared_settings_example_is_a_valid_cluster_configuration() -> None:
    """cluster.env.example validates as cluster-mode Settings (placeholders aside)."""
    pairs = dict(
        line.split("=", 1)
        for line in (CLUSTER / "cluster.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    settings = Settings(_env_file=None, **{key.lower(): value for key, value in pairs.items()})
    assert settings.backplane == pairs["BACKPLANE"]
    assert settings.lease_renew_deadline < settings.lease_ttl - settings.lease_retry
