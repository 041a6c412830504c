"""The Telegram control bot: status, ratios, the dashboard and feed control from a phone."""

from cotiza.telegram.bot import PollerState, TelegramBot, parse_command

__all__ = ["PollerState", "TelegramBot", "parse_command"]
