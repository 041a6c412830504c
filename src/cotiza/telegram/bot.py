"""The Telegram control bot: a supervised long-polling loop over python-telegram-bot's ``Bot``.

The library does the Bot API (requests, types, errors) against ``TELEGRAM_API_URL``; this
module owns the task: one poller (``getUpdates`` long polling after ``deleteWebhook`` and
``setMyCommands``), restarted with jittered backoff whenever it dies, with its state and
counters on show for health. Only allowed chats are served; any other chat gets one short
refusal per process run and nothing else. The token never reaches a log line or a reply:
errors are described by kind, and ``cotiza.logs`` masks it in library and httpx lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum

from telegram import Bot, BotCommand, Update
from telegram.error import (
    BadRequest,
    Conflict,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from cotiza.alerts.delivery import DeliveryResult, with_retries
from cotiza.feeds.reconnect import backoff_delays
from cotiza.health import Check, Scope, Status
from cotiza.logs import redact
from cotiza.settings import Settings

log = logging.getLogger(__name__)

# Answers a command (name without the slash, lower case; its arguments) with a text.
Answer = Callable[[str, list[str]], Awaitable[str]]

REFUSAL = "Este bot es privado."
STALE_REPLY = "Ese mensaje tiene {age} s: no lo ejecuto. Mandalo de nuevo si todavía hace falta."
MAX_TEXT = 4096  # Bot API limit for one message


class PollerState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"  # getMe, deleteWebhook, setMyCommands
    RUNNING = "running"  # long polling
    BACKOFF = "backoff"  # died; waiting before the next start


def parse_command(text: str) -> tuple[str, list[str]]:
    """``"/Estado@cotiza_bot x"`` -> ``("estado", ["x"])``; not a command -> ``("", [])``."""
    words = text.strip().split()
    if not words or not words[0].startswith("/"):
        return "", []
    name = words[0][1:].split("@", 1)[0].lower()
    return name, words[1:]


def describe_error(exc: BaseException) -> str:
    """A one-line, token-free description of a Bot API failure."""
    if isinstance(exc, InvalidToken):
        return "the Bot API rejected the token"
    if isinstance(exc, TelegramError):
        return redact(f"{type(exc).__name__}: {exc.message}")[:200]
    return type(exc).__name__


def _retry_after(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the int form is deprecated; both are handled
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


class TelegramBot:
    """Serves commands from the allowed chats and sends alert texts to them."""

    def __init__(
        self,
        settings: Settings,
        answer: Answer,
        commands: list[tuple[str, str]],
    ) -> None:
        token = settings.telegram_bot_token
        if token is None:
            raise ValueError("TelegramBot needs TELEGRAM_BOT_TOKEN")
        self.settings = settings
        self.answer = answer
        self.commands = commands
        self.allowed = settings.telegram_allowed_chats
        timeout = settings.telegram_http_timeout

        def request(pool: int) -> HTTPXRequest:
            return HTTPXRequest(
                connection_pool_size=pool,
                read_timeout=timeout,
                write_timeout=timeout,
                connect_timeout=timeout,
                pool_timeout=timeout,
            )

        # The library appends the token to this base: {TELEGRAM_API_URL}/bot{token}/{method}.
        self._bot = Bot(
            token.get_secret_value(),
            base_url=f"{settings.telegram_api_url}/bot",
            request=request(8),
            get_updates_request=request(1),
        )
        self.state = PollerState.STOPPED
        self.restarts = 0
        self.updates = 0
        self.refused_chats: set[int] = set()
        self.foreign_messages = 0
        self.last_error: str | None = None
        self.sent = 0
        self._offset: int | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while long polling (not while starting or backing off)."""
        return self.state is PollerState.RUNNING

    @property
    def started(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        """Start the supervised poller; idempotent. Never waits for Telegram."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name="telegram-poller")

    async def stop(self) -> None:
        """Stop polling and close the HTTP clients; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(TelegramError, OSError, RuntimeError):
                await self._bot.shutdown()
        self.state = PollerState.STOPPED

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        s = self.settings
        delays: Iterator[float] = backoff_delays(s.telegram_backoff_base, s.telegram_backoff_cap)
        while True:
            self.state = PollerState.STARTING
            began = loop.time()
            wait: float | None = None
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                wait = _retry_after(exc)
                self.last_error = describe_error(exc)
                log.warning("telegram: flood control, waiting %.0f s", wait)
            except (NetworkError, Conflict, InvalidToken, TelegramError) as exc:
                self.last_error = describe_error(exc)
                log.warning("telegram poller stopped: %s", self.last_error)
            except Exception as exc:
                # The poller's task boundary: a bug or a malformed answer. Logged with the
                # traceback (redacted by the log filter); the decision is to start over.
                self.last_error = describe_error(exc)
                log.exception("telegram poller died")
            self.restarts += 1
            if loop.time() - began >= s.telegram_stable_after:
                delays = backoff_delays(s.telegram_backoff_base, s.telegram_backoff_cap)
            self.state = PollerState.BACKOFF
            delay = max(next(delays), wait or 0.0)
            log.info("telegram poller restarts in %.1f s (restart %d)", delay, self.restarts)
            await asyncio.sleep(delay)

    async def _session(self) -> None:
        bot = self._bot
        await bot.initialize()
        await bot.delete_webhook(drop_pending_updates=False)
        await bot.set_my_commands([BotCommand(name, text) for name, text in self.commands])
        self.state = PollerState.RUNNING
        self.last_error = None
        log.info("telegram bot polling (%d allowed chats)", len(self.allowed))
        while True:
            updates = await bot.get_updates(
                offset=self._offset,
                timeout=dt.timedelta(seconds=self.settings.telegram_poll_timeout),
                allowed_updates=["message"],
            )
            for update in updates:
                self._offset = update.update_id + 1
                self.updates += 1
                await self._handle(update)

    # -- one update -------------------------------------------------------------------

    async def _handle(self, update: Update) -> None:
        message = update.message
        if message is None:
            return
        chat_id = message.chat.id
        if chat_id not in self.allowed:
            await self._refuse(chat_id)
            return
        age = time.time() - message.date.timestamp()
        if age > self.settings.telegram_max_message_age:
            await self.reply(chat_id, STALE_REPLY.format(age=int(age)))
            return
        name, args = parse_command(message.text or "")
        try:
            text = await self.answer(name, args)
        except Exception:
            # The boundary of one command: the poller goes on with the next update.
            log.exception("telegram command %r failed", name)
            text = "Error interno al responder ese comando; quedó registrado en el log."
        await self.reply(chat_id, text)

    async def _refuse(self, chat_id: int) -> None:
        self.foreign_messages += 1
        if chat_id in self.refused_chats:
            return
        if len(self.refused_chats) >= self.settings.telegram_max_refused_chats:
            return  # a flood of strangers: stop answering any of them
        self.refused_chats.add(chat_id)
        log.warning("telegram: chat %d is not allowed; refused once", chat_id)
        await self.reply(chat_id, REFUSAL)

    async def reply(self, chat_id: int, text: str) -> bool:
        """Send ``text`` to one chat; a failure is logged, never raised."""
        try:
            await self._bot.send_message(chat_id, text[:MAX_TEXT])
        except RetryAfter as exc:
            log.warning("telegram: reply to %d dropped by flood control", chat_id)
            self.last_error = describe_error(exc)
            return False
        except TelegramError as exc:
            log.warning("telegram: reply to %d failed: %s", chat_id, describe_error(exc))
            return False
        self.sent += 1
        return True

    # -- alerts -----------------------------------------------------------------------

    async def broadcast(self, text: str) -> DeliveryResult:
        """Send an alert text to every allowed chat, each with retries and backoff."""
        if self._task is None:
            return DeliveryResult("unavailable", error="telegram bot not running")
        s = self.settings
        per_chat: dict[str, str] = {}
        attempts = 0
        for chat_id in sorted(self.allowed):

            async def attempt(chat_id: int = chat_id) -> None:
                await self._bot.send_message(chat_id, text[:MAX_TEXT])

            result = await with_retries(
                attempt, _classify, s.alert_webhook_attempts, s.alert_retry_base, s.alert_retry_cap
            )
            attempts += result.attempts
            per_chat[str(chat_id)] = result.status if result.error is None else result.error
            if result.status == "delivered":
                self.sent += 1
        ok = sum(1 for chat_id in self.allowed if per_chat[str(chat_id)] == "delivered")
        status = "delivered" if ok == len(self.allowed) else "partial" if ok else "failed"
        return DeliveryResult(status, attempts, detail={"chats": per_chat})

    # -- health -----------------------------------------------------------------------

    def check(self) -> Check:
        value = {
            "state": self.state.value,
            "restarts": self.restarts,
            "updates": self.updates,
            "refused_chats": len(self.refused_chats),
        }
        task = self._task
        if task is not None and task.done():
            return Check("telegram:poller", Status.FAIL, value, None, "supervisor task ended")
        settling = self.state is PollerState.STARTING and not self.restarts
        if self.state in (PollerState.RUNNING, PollerState.STOPPED) or settling:
            return Check("telegram:poller", Status.PASS, value, None, None, Scope.READINESS)
        return Check("telegram:poller", Status.WARN, value, None, self.last_error, Scope.READINESS)


def _classify(exc: Exception) -> tuple[bool, str, float | None]:
    if isinstance(exc, RetryAfter):
        return True, "flood control", _retry_after(exc)
    if isinstance(exc, (InvalidToken, Conflict, BadRequest)):
        return False, describe_error(exc), None
    if isinstance(exc, NetworkError):  # includes TimedOut
        return True, describe_error(exc), None
    if isinstance(exc, TelegramError):  # Forbidden (bot blocked or removed) and the like
        return False, describe_error(exc), None
    log.error("telegram alert: unexpected %s", type(exc).__name__, exc_info=exc)
    return False, type(exc).__name__, None
