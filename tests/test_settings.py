"""Settings validators: each one's accepted and refused values, and the one-line error that
names the variable (the cluster validators are in tests/cluster/test_cluster_settings.py)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from cotiza.errors import ConfigurationError
from cotiza.settings import FeedKind, Settings, load_settings

TOKEN = "123456789:AAE-a-token-of-botfathers-shape_0123"


@pytest.fixture(autouse=True)
def _no_outside_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the environment nor a ``.env`` file of the caller's takes part."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


def refused(**overrides: Any) -> str:
    """The error message ``load_settings`` stops with; it is one line."""
    with pytest.raises(ConfigurationError) as error:
        load_settings(**overrides)
    message = str(error.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(
    ("field", "raw", "parsed"),
    [
        ("feed_instruments", " AL30 , DLR/DIC26,, ", ["AL30", "DLR/DIC26"]),
        ("allowed_origins", "https://a.example,https://b.example", ["https://a.example", "https://b.example"]),
        ("allowed_origins", "", []),
        ("telegram_chat_ids", "12, -3400", [12, -3400]),
        ("market_holidays", "2026-12-25,2027-01-01", [dt.date(2026, 12, 25), dt.date(2027, 1, 1)]),
    ],
)  # fmt: skip
def test_comma_separated_lists_are_split_and_trimmed(
    field: str, raw: str, parsed: list[Any]
) -> None:
    assert getattr(load_settings(**{field: raw}), field) == parsed


@pytest.mark.parametrize(
    ("field", "raw", "variable"),
    [
        ("telegram_chat_ids", "12,abc", "TELEGRAM_CHAT_IDS"),
        ("market_holidays", "2026-13-01", "MARKET_HOLIDAYS"),
    ],
)
def test_a_bad_list_item_names_the_variable(field: str, raw: str, variable: str) -> None:
    assert refused(**{field: raw}).startswith(f"invalid configuration: {variable}")


def test_telegram_token_of_botfathers_shape_is_kept_and_empty_is_none() -> None:
    token = load_settings(telegram_bot_token=TOKEN).telegram_bot_token
    assert token is not None and token.get_secret_value() == TOKEN
    assert load_settings(telegram_bot_token="").telegram_bot_token is None


@pytest.mark.parametrize("token", ["not-a-token", "abc:def", "987654321:", "987 654:abc"])
def test_telegram_token_of_another_shape_is_refused_without_echoing_it(token: str) -> None:
    message = refused(telegram_bot_token=token)
    assert message.startswith("invalid configuration: TELEGRAM_BOT_TOKEN: expected a Bot API")
    assert token not in message


@pytest.mark.parametrize(
    ("field", "variable"),
    [("alert_webhook_url", "ALERT_WEBHOOK_URL"), ("telegram_api_url", "TELEGRAM_API_URL")],
)
def test_urls_must_be_http_or_https(field: str, variable: str) -> None:
    assert refused(**{field: "ftp://example.invalid/x"}).startswith(
        f"invalid configuration: {variable}: expected an http:// or https://"
    )
    assert refused(**{field: "example.invalid"}).startswith(f"invalid configuration: {variable}")


def test_webhook_url_is_a_secret_and_empty_means_none() -> None:
    settings = load_settings(alert_webhook_url="https://hooks.example/s3cret-path")
    assert settings.alert_webhook_url is not None
    assert settings.secret_values() == ("https://hooks.example/s3cret-path",)
    assert settings.redacted()["alert_webhook_url"] == "***"
    assert load_settings(alert_webhook_url="").alert_webhook_url is None


def test_telegram_api_url_loses_its_trailing_slash() -> None:
    assert load_settings(telegram_api_url=" http://127.0.0.1:9/ ").telegram_api_url == (
        "http://127.0.0.1:9"
    )


def test_market_tz_must_be_a_known_zone() -> None:
    assert load_settings(market_tz="Europe/Madrid").tz.key == "Europe/Madrid"
    assert refused(market_tz="Mars/Olympus") == (
        "invalid configuration: MARKET_TZ: unknown time zone 'Mars/Olympus'"
    )


@pytest.mark.parametrize(
    ("hours", "session"),
    [
        ("11:00-17:00", (dt.time(11), dt.time(17))),
        (" 9:30-16:05 ", (dt.time(9, 30), dt.time(16, 5))),
        ("00:00-24:00", (dt.time(0), None)),
        ("always", (dt.time(0), None)),
        ("24H", (dt.time(0), None)),
    ],
)
def test_market_hours_accepted(hours: str, session: tuple[dt.time, dt.time | None]) -> None:
    assert load_settings(market_hours=hours).session_hours == session


@pytest.mark.parametrize(
    ("hours", "fragment"),
    [
        ("11-17", "expected HH:MM-HH:MM"),
        ("11:00 to 17:00", "expected HH:MM-HH:MM"),
        ("25:00-26:00", "out of range"),
        ("11:60-17:00", "out of range"),
        ("11:00-24:30", "out of range"),
        ("17:00-11:00", "open before it closes"),
        ("11:00-11:00", "open before it closes"),
    ],
)
def test_market_hours_refused(hours: str, fragment: str) -> None:
    message = refused(market_hours=hours)
    assert message.startswith("invalid configuration: MARKET_HOURS: "), message
    assert fragment in message


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
    ],
)
def test_database_url_is_normalised_to_an_async_driver(url: str, normalised: str) -> None:
    assert load_settings(database_url=url).database_url == normalised


@pytest.mark.parametrize("url", ["mysql://x", "postgresql+psycopg://u@h/d", "cotiza.db"])
def test_database_url_of_another_driver_is_refused(url: str) -> None:
    assert refused(database_url=url).startswith("invalid configuration: DATABASE_URL: expected")


def test_database_password_is_masked_when_redacted() -> None:
    settings = load_settings(database_url="postgresql://cotiza:pa55word@db:5432/cotiza")
    assert settings.redacted()["database_url"] == "postgresql+asyncpg://cotiza:***@db:5432/cotiza"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("remarket", "remarket"),
        (" LIVE ", "live"),
        ("https://api.example/", "https://api.example/"),
    ],
)
def test_primary_env_accepted(env: str, expected: str) -> None:
    assert load_settings(primary_env=env).primary_env == expected


def test_primary_env_refused() -> None:
    assert refused(primary_env="staging").startswith(
        "invalid configuration: PRIMARY_ENV: expected remarket, live or a base URL"
    )


def test_debug_faults_need_the_test_environment_and_loopback() -> None:
    assert load_settings(debug_faults=True, cotiza_env="test", host="127.0.0.1").debug_faults
    assert load_settings(debug_faults=True, cotiza_env="test", host="::1").debug_faults
    for env, host in (("production", "127.0.0.1"), ("test", "0.0.0.0")):
        message = refused(debug_faults=True, cotiza_env=env, host=host)
        assert message.startswith("invalid configuration: DEBUG_FAULTS: needs COTIZA_ENV=test")
    assert load_settings(debug_faults=False, host="0.0.0.0").debug_faults is False


@pytest.mark.parametrize(("level", "expected"), [("debug", "DEBUG"), ("Warning", "WARNING")])
def test_log_level_accepted_in_any_case(level: str, expected: str) -> None:
    assert load_settings(log_level=level).log_level == expected


def test_log_level_refused() -> None:
    assert refused(log_level="LOUD") == (
        "invalid configuration: LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL"
    )


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"feed": "replay"}, "REPLAY_FILE is required when FEED=replay"),
        ({"feed": "primary", "primary_user": "ana"}, "PRIMARY_USER and PRIMARY_PASSWORD"),
        ({"alert_retry_base": 5, "alert_retry_cap": 1}, "ALERT_RETRY_CAP must not be below"),
        ({"telegram_backoff_base": 5, "telegram_backoff_cap": 1}, "TELEGRAM_BACKOFF_CAP"),
        ({"feed_warn_after": 30, "feed_fail_after": 10}, "FEED_FAIL_AFTER must not be below"),
    ],
)
def test_inconsistent_combinations_name_the_variables(
    overrides: dict[str, Any], fragment: str
) -> None:
    assert fragment in refused(**overrides)


def test_consistent_combinations_are_accepted(tmp_path: Path) -> None:
    replay = load_settings(feed="replay", replay_file=str(tmp_path / "r.ndjson"))
    assert replay.feed is FeedKind.REPLAY
    primary = load_settings(feed="primary", primary_user="ana", primary_password="pw")
    assert primary.feed is FeedKind.PRIMARY
    equal = load_settings(
        alert_retry_base=2, alert_retry_cap=2, feed_warn_after=5, feed_fail_after=5
    )
    assert equal.alert_retry_cap == equal.alert_retry_base


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("websocket_timeout", "0", "greater than 0"),
        ("max_websocket_connections", "lots", "valid integer"),
        ("port", "70000", "less than or equal to 65535"),
        ("feed", "telepathy", "'sim', 'replay' or 'primary'"),
        ("ws_impl", "websockets-legacy", "'websockets-sansio' or 'wsproto'"),
        ("ws_compression", "sometimes", "valid boolean"),
    ],
)
def test_field_constraints_name_the_variable(field: str, value: str, fragment: str) -> None:
    message = refused(**{field: value})
    assert message.startswith(f"invalid configuration: {field.upper()}: "), message
    assert fragment in message, message


def test_environment_variables_are_read_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKET_HOURS", "10:00-16:00")
    monkeypatch.setenv("LOG_LEVEL", "noisy")
    assert refused().startswith("invalid configuration: LOG_LEVEL")
    settings = load_settings(log_level="info", market_hours=None)
    assert settings.market_hours == "10:00-16:00" and settings.log_level == "INFO"
