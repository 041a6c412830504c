"""Real processes: ``cotiza fake-telegram`` and a service whose bot talks to it; the bot
token never appears in a log line (even at DEBUG) or a response."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alerts.alerts_kit import ALLOWED_CHAT, FOREIGN_CHAT, TOKEN
from support.poll import eventually_sync
from support.ports import free_port
from support.process import service_env, wait_healthy

from cotiza.telegram.bot import REFUSAL

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
SECRET_PART = TOKEN.split(":", 1)[1]
WRONG_TOKEN = "987654321:AAF-another-token-that-the-api-rejects"


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[str]:
    """``cotiza fake-telegram`` in its own process; yields its base URL."""
    port = free_port()
    log = (tmp_path / "fake.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cotiza", "fake-telegram", "--port", str(port), "--token", TOKEN],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, "fake-telegram exited"
        try:
            return httpx.get(f"{url}/_fake/sent", timeout=1).is_success
        except httpx.HTTPError:
            return False

    try:
        eventually_sync(up, 20.0, "fake-telegram up")
        yield url
    finally:
        assert stop(proc) == 0
        log.close()
    assert TOKEN not in (tmp_path / "fake.log").read_text()


def sent(url: str, chat: int) -> list[str]:
    body = httpx.get(f"{url}/_fake/sent", params={"chat_id": chat}, timeout=5).json()
    return [m["text"] for m in body["messages"]]


def start_service(tmp_path: Path, api: str, token: str, name: str, **extra: str):
    port = free_port()
    env = service_env(
        tmp_path,
        **extra,
        LOG_LEVEL="DEBUG",
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_URL=api,
        TELEGRAM_CHAT_IDS=str(ALLOWED_CHAT),
        TELEGRAM_POLL_TIMEOUT="2",
        TELEGRAM_BACKOFF_BASE="0.2",
        TELEGRAM_BACKOFF_CAP="0.5",
    )
    log_path = tmp_path / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, port, log, log_path


def test_bot_in_a_real_service_never_logs_its_token(tmp_path: Path, fake_api: str) -> None:
    """Commands, a refusal, a poller crash with its traceback and a failing webhook, all at
    DEBUG: neither the bot token nor the webhook URL shows in a log line or a response."""
    webhook = f"http://127.0.0.1:{free_port()}/hook/s3cr3t-hook"  # nothing listens there
    proc, port, log, log_path = start_service(
        tmp_path,
        fake_api,
        TOKEN,
        "service",
        ALERT_WEBHOOK_URL=webhook,
        ALERT_WEBHOOK_ATTEMPTS="2",
        ALERT_RETRY_BASE="0.05",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(port, proc)
        rule = {"pair_id": 1, "field": "mid_ratio", "op": ">", "value": 0, "channels": ["webhook"]}
        assert httpx.post(f"{base}/api/alerts/rules", json=rule, timeout=5).status_code == 201

        def webhook_failed() -> bool:
            data = httpx.get(f"{base}/api/alerts/history", timeout=5).json()["data"]
            return bool(data) and data[0]["deliveries"]["webhook"]["status"] == "failed"

        eventually_sync(webhook_failed, 20.0, "the webhook delivery to fail")
        httpx.post(f"{fake_api}/_fake/messages", json={"chat_id": ALLOWED_CHAT, "text": "/estado"})
        eventually_sync(lambda: len(sent(fake_api, ALLOWED_CHAT)) == 1, 20.0, "a reply to /estado")
        assert "Estado de cotiza" in sent(fake_api, ALLOWED_CHAT)[0]
        httpx.post(f"{fake_api}/_fake/messages", json={"chat_id": FOREIGN_CHAT, "text": "/ratios"})
        eventually_sync(lambda: sent(fake_api, FOREIGN_CHAT) == [REFUSAL], 20.0, "one refusal")

        fault = {"method": "getUpdates", "kind": "garbage", "count": 1}
        assert httpx.post(f"{fake_api}/_fake/faults", json=fault).status_code == 200
        httpx.post(f"{fake_api}/_fake/messages", json={"chat_id": ALLOWED_CHAT, "text": "/ayuda"})

        def restarted() -> bool:
            checks = httpx.get(f"{base}/health/detailed", timeout=5).json()["checks"]
            return checks["telegram:poller"][0]["observedValue"]["restarts"] >= 1

        eventually_sync(restarted, 20.0, "the poller restarted")
        eventually_sync(
            lambda: len(sent(fake_api, ALLOWED_CHAT)) == 2, 20.0, "a reply after the restart"
        )
        for path in (
            "/health/detailed",
            "/cotizaciones/status",
            "/api/alerts/options",
            "/api/alerts/history",
            "/api/alerts/rules",
        ):
            body = httpx.get(f"{base}{path}", timeout=5).text
            assert SECRET_PART not in body and "s3cr3t" not in body, path
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = log_path.read_text()
    assert SECRET_PART not in output and "s3cr3t" not in output
    assert "alert webhook failed after 2 attempts: ConnectError" in output
    assert f"{fake_api}/bot***" in output  # the library logged its API URL, masked
    assert "telegram poller died" in output and "Traceback" in output


def test_rejected_token_is_retried_and_never_logged(tmp_path: Path, fake_api: str) -> None:
    """A token the Bot API rejects (the library quotes it in its error) is not logged; the
    poller backs off and health says why."""
    proc, port, log, log_path = start_service(tmp_path, fake_api, WRONG_TOKEN, "rejected")
    try:
        wait_healthy(port, proc)

        def failing() -> bool:
            detailed = httpx.get(f"http://127.0.0.1:{port}/health/detailed", timeout=5).text
            assert WRONG_TOKEN.split(":")[1] not in detailed
            check = httpx.get(f"http://127.0.0.1:{port}/health/detailed", timeout=5).json()
            poller = check["checks"]["telegram:poller"][0]
            return poller["observedValue"]["restarts"] >= 2 and poller["status"] == "warn"

        eventually_sync(failing, 20.0, "two failed starts")
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = log_path.read_text()
    assert WRONG_TOKEN.split(":")[1] not in output
    assert "the Bot API rejected the token" in output
