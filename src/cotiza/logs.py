"""Logging set-up: plain text or one JSON object per line, secrets masked at the handler.

``configure_logging`` leaves exactly one handler in the process, on the root logger, and
makes every other logger (uvicorn's included) hand its records to it. Redaction and the
format therefore apply to every line, whichever entry point started the service.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import NotRequired

from typing_extensions import TypedDict

from cotiza.settings import LogFormat

_SECRET_PATTERNS = (
    re.compile(r"((?:token|password)=)[^&\s\"']+", re.IGNORECASE),
    # A Telegram Bot API token, wherever it appears: in request URLs (``/bot<token>/...``,
    # logged by httpx and python-telegram-bot) and in that library's error messages.
    # Settings only accept tokens of this shape, so the configured token is always covered.
    re.compile(r"()(?<!\d)\d{3,}:[A-Za-z0-9_-]{20,}"),
    # Credential headers, as uvicorn logs them at DEBUG ("< authorization: Bearer ...") and
    # as httpcore does ("(b'X-Auth-Token', b'...')", Primary's session token).
    re.compile(
        r"((?:proxy-)?authorization|x-api-token|x-auth-token|x-password|cookie)"
        r"(['\"]?\s*[:=,]\s*(?:b?['\"])?(?:(?:bearer|basic|token)\s+)?)[^\s'\",)]+",
        re.IGNORECASE,
    ),
    # The password inside a URL (PRIMARY_ENV, a database or webhook URL): scheme://user:***@
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^\s/]*(?=@)", re.IGNORECASE),
)
_MASK = {1: r"\1***", 2: r"\1\2***"}  # keep the name (and separator), mask the value
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
_ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    """``text`` with every known secret pattern masked (``?token=abc`` -> ``?token=***``)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_MASK[pattern.groups], text)
    return text


class RedactSecrets(logging.Filter):
    """Masks secrets in a record's message, traceback and stack: ``?token=`` style secrets,
    Telegram bot tokens, and the configured ``secrets`` literally.

    Installed on the handler, not on a logger, so that it sees records of every logger,
    e.g. uvicorn's "WebSocket /ws?token=..." lines.
    """

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
            # Formatters reuse ``exc_text`` once it is set; exception messages can carry a
            # secret too (python-telegram-bot's InvalidToken quotes the token).
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


class LogLine(TypedDict):
    ts: str
    level: str
    logger: str
    message: str
    exc_info: NotRequired[str]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        item = LogLine(
            ts=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            level=record.levelname,
            logger=record.name,
            message=record.getMessage(),
        )
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            item["exc_info"] = record.exc_text
        return json.dumps(item, ensure_ascii=False)


def configure_logging(level: str, fmt: LogFormat, secrets: Iterable[str] = ()) -> None:
    """One stderr handler on the root logger, with redaction; every logger propagates to it.

    Idempotent: calling it again replaces the handler. Loggers created later propagate to
    the root by default, so they are covered too.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A logger with a handler of its own (uvicorn's default configuration gives "uvicorn"
    # and "uvicorn.access" one each) would bypass the redacting handler.
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.handlers[:] = []
            logger.propagate = True
    # uvicorn's own levels (set by its default configuration) would differ by entry point.
    for name in _UVICORN_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.getLogger(_ACCESS_LOGGER).setLevel(max(logging.WARNING, root.level))
    # httpx logs every request URL (INFO) and its headers (DEBUG): the Telegram long poll
    # alone would add a line every few seconds, and ALERT_WEBHOOK_URL may carry a secret
    # in its path that no pattern can recognise. Its warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
