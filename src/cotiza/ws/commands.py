"""Inbound WebSocket commands, parsed into one pydantic discriminated union.

A client frame is a JSON object naming its command by ``action`` or ``type``
(``command_name`` decides which wins; names are case-insensitive). Anything that cannot
become a ``Command`` raises ``CommandError`` carrying the message the client gets in an
``error`` frame; the connection stays open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_SYMBOLS_PER_COMMAND = 500
MAX_SYMBOL_LENGTH = 128
MAX_NAME_ECHO = 64  # characters of an unknown command name repeated in the error


class CommandError(Exception):
    """A client frame that cannot be honoured; answered with an error frame."""

    def __init__(self, message: str, command: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command


def command_name(message: Mapping[str, object]) -> object:
    """The name a client frame gives its command: ``action`` when present, else ``type``.

    The one place that decides it, as the prototype did (``action`` first), in lower case
    so ``PING`` and ``Subscribe`` work; anything but a string is no name at all.
    """
    name = message.get("action", message.get("type"))
    return name.strip().lower() if isinstance(name, str) else name


def _symbols(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise PydanticCustomError(
            "instruments", "'instruments' must be a non-empty list of symbols"
        )
    if len(value) > MAX_SYMBOLS_PER_COMMAND:
        raise PydanticCustomError(
            "instruments", f"at most {MAX_SYMBOLS_PER_COMMAND} instruments per command"
        )
    if not all(isinstance(s, str) and 0 < len(s.strip()) <= MAX_SYMBOL_LENGTH for s in value):
        raise PydanticCustomError("instruments", "every instrument must be a non-empty string")
    return list(dict.fromkeys(s.strip() for s in value))


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class _InstrumentsCommand(_Command):
    instruments: tuple[str, ...]

    @model_validator(mode="before")
    @classmethod
    def _instruments(cls, data: Any) -> Any:
        # ``symbols`` is accepted as an older spelling of ``instruments``.
        if isinstance(data, dict):
            return {**data, "instruments": _symbols(data.get("instruments", data.get("symbols")))}
        return data


class Ping(_Command):
    command: Literal["ping"]


class Subscribe(_InstrumentsCommand):
    command: Literal["subscribe"]


class Unsubscribe(_InstrumentsCommand):
    command: Literal["unsubscribe"]


class SubscribeRatios(_Command):
    command: Literal["subscribe_ratios"]
    pairs: Literal["all"] | tuple[JsonValue, ...] = "all"  # ids or "BASE-QUOTE" names

    @field_validator("pairs", mode="before")
    @classmethod
    def _pairs(cls, value: object) -> object:
        if value != "all" and (not isinstance(value, list) or not value):
            raise PydanticCustomError("pairs", "'pairs' must be \"all\" or a non-empty list")
        return value


class UnsubscribeRatios(_Command):
    command: Literal["unsubscribe_ratios"]


class DashboardSubscribe(_Command):
    command: Literal["dashboard_subscribe", "subscribe_dashboard"]


class DashboardUnsubscribe(_Command):
    command: Literal["dashboard_unsubscribe", "unsubscribe_dashboard"]


class GetData(_Command):
    command: Literal["get_data", "dashboard_get_data"]


class GetStatus(_Command):
    command: Literal["get_status", "dashboard_status"]


class SubscribeAlerts(_Command):
    command: Literal["subscribe_alerts"]


class UnsubscribeAlerts(_Command):
    command: Literal["unsubscribe_alerts"]


Command = Annotated[
    Ping
    | Subscribe
    | Unsubscribe
    | SubscribeRatios
    | UnsubscribeRatios
    | DashboardSubscribe
    | DashboardUnsubscribe
    | GetData
    | GetStatus
    | SubscribeAlerts
    | UnsubscribeAlerts,
    Field(discriminator="command"),
]

_COMMANDS: TypeAdapter[Command] = TypeAdapter(Command)

COMMAND_NAMES = frozenset(
    name
    for model in get_args(get_args(Command)[0])
    for name in get_args(model.model_fields["command"].annotation)
)


def parse_command(text: str) -> Command:
    """The command in one client frame; ``CommandError`` says what is wrong with it."""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CommandError("invalid JSON") from None
    if not isinstance(message, dict):
        raise CommandError("a command must be a JSON object")
    name = command_name(message)
    if not isinstance(name, str):
        raise CommandError("missing command: give 'type' or 'action'")
    if name not in COMMAND_NAMES:
        echo = name[:MAX_NAME_ECHO]
        raise CommandError(f"unknown command {echo!r}", echo)
    try:
        return _COMMANDS.validate_python({**message, "command": name})
    except ValidationError as exc:
        raise CommandError(exc.errors()[0]["msg"], name) from None
