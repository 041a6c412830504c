"""Log redaction of bot tokens and configured secrets, in messages and tracebacks."""

from __future__ import annotations

import io
import logging

from cotiza.logs import JsonFormatter, RedactSecrets, redact

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _emit(filt: RedactSecrets, formatter: logging.Formatter, *args: object, exc: bool = False):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(filt)
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        if exc:
            try:
                raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
            except RuntimeError:
                logger.exception(*args)
        else:
            logger.warning(*args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_token_shapes_are_masked_anywhere() -> None:
    """A Bot API token is masked in URLs and in prose; times and ratios are left alone."""
    line = f"POST https://api.telegram.org/bot{TOKEN}/getUpdates and `{TOKEN}`"
    assert redact(line) == "POST https://api.telegram.org/bot***/getUpdates and `***`"
    assert (
        redact("at 12:30:45 ratio 1:1.25 ?token=abc&x=1")
        == "at 12:30:45 ratio 1:1.25 ?token=***&x=1"
    )


def test_messages_and_tracebacks_are_masked_in_text_and_json() -> None:
    """Arguments, configured literal secrets and exception texts never reach the output."""
    filt = RedactSecrets(["123:abc", "http://hooks.invalid/s3cr3t"])
    text = _emit(filt, logging.Formatter("%(message)s"), "url %s and %s", TOKEN, "123:abc")
    assert TOKEN not in text and "123:abc" not in text and "url *** and ***" in text
    hook = _emit(filt, logging.Formatter("%(message)s"), "posting to http://hooks.invalid/s3cr3t")
    assert "s3cr3t" not in hook
    for formatter in (logging.Formatter("%(message)s"), JsonFormatter()):
        out = _emit(RedactSecrets(), formatter, "bot died", exc=True)
        assert "RuntimeError" in out and "Traceback" in out
        assert TOKEN not in out and TOKEN.split(":")[1] not in out
