"""A fake Telegram Bot API server for tests and demos without the real Telegram."""

from cotiza.fake_telegram.server import BOT_USER, Call, FakeTelegram, Fault, SentMessage

__all__ = ["BOT_USER", "Call", "FakeTelegram", "Fault", "SentMessage"]
