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
from typing import NotRequired

from typing_extensions import TypedDict

from cotiza.settings import LogFormat

_SECRET_PATTERNS = (re.compile(r"((?:token|password)=)[^&\s\"']+", re.IGNORECASE),)
_TRACEBACKS = logging.Formatter()
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi")
_ACCESS_LOGGER = "uvicorn.access"


def redact(text: str) -> str:
    """``text`` with every known secret pattern masked (``?token=abc`` -> ``?token=***``)."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactSecrets(logging.Filter):
    """Masks ``?token=`` style secrets in a record's message and traceback.

    Installed on the handler, not on a logger, so that it sees records of every logger,
    e.g. uvicorn's "WebSocket /ws?token=..." lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
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


def configure_logging(level: str, fmt: LogFormat) -> None:
    """One stderr handler on the root logger, with redaction; every logger propagates to it.

    Idempotent: calling it again replaces the handler. Loggers created later propagate to
    the root by default, so they are covered too.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt is LogFormat.JSON:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
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
