"""``cotiza fake-telegram``: a local Telegram Bot API look-alike for tests and demos."""

from __future__ import annotations

import argparse
import asyncio
import sys

from cotiza.cli.feeds import _run
from cotiza.logs import configure_logging
from cotiza.settings import TELEGRAM_TOKEN_RE, LogFormat

DEFAULT_TOKEN = "123456789:fake-telegram-token-for-tests-only"


def fake_telegram(args: argparse.Namespace) -> int:
    from cotiza.fake_telegram import FakeTelegram

    configure_logging(args.log_level, LogFormat.TEXT)
    if not TELEGRAM_TOKEN_RE.match(args.token):
        print(
            "cotiza: --token must look like 123456789:AAE... (as BotFather issues)", file=sys.stderr
        )
        return 2

    async def main(stop: asyncio.Event) -> int:
        async with FakeTelegram(args.token, host=args.host, port=args.port) as fake:
            # The token is this fake's own, but it is a token all the same: never printed.
            print(f"fake Telegram Bot API on {fake.url}", file=sys.stderr, flush=True)
            await stop.wait()
        return 0

    return _run(main)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fake = sub.add_parser("fake-telegram", help="run a fake Telegram Bot API server (tests, demos)")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9100, help="port (0 picks a free one)")
    fake.add_argument(
        "--token", default=DEFAULT_TOKEN, help="the bot token it accepts (TELEGRAM_BOT_TOKEN)"
    )
    fake.add_argument("--log-level", default="INFO")
    fake.set_defaults(func=fake_telegram)
