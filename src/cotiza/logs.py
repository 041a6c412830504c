"""Logging set-up: plain text or one JSON object per line."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

from cotiza.settings import LogFormat

_SECRET_QUERY = re.compile(r"((?:token|password)=)[^&\s\"']+", re.IGNORECASE)
# A Telegram Bot API token, wherever it appears: in request URLs (``/bot<token>/getUpdates``,
# logged by httpx and python-telegram-bot) and in that library's error messages. Settings
# only accept tokens of this shape, so the configured token is always covered.
_TELEGRAM_TOKEN = re.compile(r"(?<!\d)\d{3,}:[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """``text`` with query-string secrets and Telegram bot tokens masked."""
    return _TELEGRAM_TOKEN.sub("***", _SECRET_QUERY.sub(r"\1***", text))


class RedactSecrets(logging.Filter):
    """Masks secrets in log lines: ``?token=`` style secrets (uvicorn's "WebSocket
    /ws?token=..." lines), Telegram bot tokens (``/bot<token>/...`` URLs) and the configured
    ``secrets`` literally, in the message and in the formatted traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return redact(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            # Exception messages can carry the token too (python-telegram-bot's InvalidToken
            # does); formatters reuse ``exc_text`` once it is set.
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self._redact(text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        item: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            item["exc_info"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(item, ensure_ascii=False)


def configure_logging(level: str, fmt: LogFormat, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request URL (INFO) and its headers (DEBUG): the Telegram long poll
    # alone would add a line every few seconds, and ALERT_WEBHOOK_URL may carry a secret
    # in its path that no pattern can recognise. Its warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
