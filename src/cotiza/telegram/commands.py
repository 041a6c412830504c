"""The bot's commands, answered in Spanish (voseo, es-AR numbers) from the running service.

Feed control goes through the same ``FeedRunner`` as the REST endpoints; status and health
come from the same checks as ``/health/detailed``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cotiza.alerts.messages import describe_rule, es_number
from cotiza.errors import CotizaError
from cotiza.health import Status, overall

if TYPE_CHECKING:
    from cotiza.service import Services

# (command, description) as registered with setMyCommands; /status is /estado in English.
COMMANDS: list[tuple[str, str]] = [
    ("estado", "Estado del servicio: feed, conexiones, datos, salud"),
    ("status", "Lo mismo que /estado"),
    ("ratios", "Ratios en vivo"),
    ("tablero", "Tablero de ratios, compacto"),
    ("iniciar", "Iniciar el feed"),
    ("detener", "Detener el feed"),
    ("reiniciar", "Reiniciar el feed"),
    ("alertas", "Reglas de alerta y últimos disparos"),
    ("ayuda", "Esta ayuda"),
]

_FEED_STATE = {"running": "corriendo", "stopped": "detenido", "failed": "con falla"}
_CONNECTION = {
    "idle": "inactivo",
    "connecting": "conectando",
    "connected": "conectado",
    "reconnecting": "reconectando",
    "stopped": "detenido",
    "failed": "con falla",
}
_HEALTH = {"healthy": "✅ sana", "degraded": "⚠️ degradada", "unhealthy": "❌ con fallas"}
_MAX_ROWS = 30


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{es_number(value, 2)} %"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "sin datos todavía"
    if seconds < 60:
        return f"hace {es_number(seconds, 1)} s"
    if seconds < 3600:
        return f"hace {int(seconds // 60)} min"
    return f"hace {es_number(seconds / 3600, 1)} h"


class BotCommands:
    """Turns a command into its answer; unknown commands get a hint to /ayuda."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._handlers: dict[str, Callable[[list[str]], Awaitable[str]]] = {
            "estado": self.estado,
            "status": self.estado,
            "ratios": self.ratios,
            "tablero": self.tablero,
            "iniciar": self.iniciar,
            "detener": self.detener,
            "reiniciar": self.reiniciar,
            "alertas": self.alertas,
            "ayuda": self.ayuda,
            "help": self.ayuda,
            "start": self.ayuda,  # what Telegram sends when someone opens the bot
        }

    async def __call__(self, name: str, args: list[str]) -> str:
        handler = self._handlers.get(name)
        if handler is None:
            return "No conozco ese comando. Probá /ayuda."
        try:
            return await handler(args)
        except CotizaError as exc:
            return f"No pude hacerlo: {exc}"

    async def ayuda(self, _: list[str]) -> str:
        lines = ["Comandos de cotiza:"]
        lines += [f"/{name} — {text}" for name, text in COMMANDS]
        return "\n".join(lines)

    async def estado(self, _: list[str]) -> str:
        s = self.services
        now = time.time()
        feed = s.feed.status(now)
        checks = await s.health.checks()
        problems = [c for c in checks if c.status is not Status.PASS]
        hub = s.hub.status()
        open_now = s.calendar.is_open(now)
        lines = [
            "📊 Estado de cotiza",
            f"Feed {feed['feed']}: {_FEED_STATE.get(feed['state'], feed['state'])}"
            f" ({_CONNECTION.get(feed['connection'], feed['connection'])})",
            f"Instrumentos: {len(feed['instruments'])}",
            f"Último dato: {_age(feed['last_tick_age'])}",
            f"Mercado: {'abierto' if open_now else 'cerrado'}",
            f"Conexiones WebSocket: {hub['active_connections']}"
            f" (tablero: {hub['dashboard_subscribers']})",
            f"Salud: {_HEALTH.get(overall(checks), overall(checks))}",
        ]
        for check in problems:
            detail = f": {check.output}" if check.output else ""
            lines.append(f"  • {check.name} {check.status.value}{detail}")
        if feed["last_error"]:
            lines.append(f"Último error del feed: {feed['last_error']}")
        return "\n".join(lines)

    async def ratios(self, _: list[str]) -> str:
        items = self.services.ratios.snapshot()
        if not items:
            return "No hay pares de ratios activos."
        lines = ["📈 Ratios en vivo"]
        for item in items[:_MAX_ROWS]:
            if item["mid_ratio"] is None:
                lines.append(f"{item['par']}: sin datos")
                continue
            lines.append(
                f"{item['par']}: {es_number(item['mid_ratio'])}"
                f" (compra {es_number(item['bid_ratio'])} · venta {es_number(item['ask_ratio'])})"
            )
        return "\n".join(lines)

    async def tablero(self, _: list[str]) -> str:
        result = await self.services.dashboard_query()
        rows = result["data"]
        if not rows:
            return "El tablero está vacío: todavía no hay historia de ratios."
        lines = ["📋 Tablero (último · vs rueda · vs 1 semana · vs 1 mes)"]
        for row in rows[:_MAX_ROWS]:
            lines.append(
                f"{row['par']}: {es_number(row['ultimo_ratio_operado'])}"
                f" · {_pct(row['dif_rueda_pct'])} · {_pct(row['dif_1semana_pct'])}"
                f" · {_pct(row['dif_1mes_pct'])}"
            )
        return "\n".join(lines)

    async def iniciar(self, _: list[str]) -> str:
        feed = self.services.feed
        started = await feed.start(feed.configured_instruments())
        return "▶️ Feed iniciado." if started else "El feed ya estaba corriendo."

    async def detener(self, _: list[str]) -> str:
        stopped = await self.services.feed.stop()
        return "⏹ Feed detenido." if stopped else "El feed no estaba corriendo."

    async def reiniciar(self, _: list[str]) -> str:
        await self.services.feed.restart()
        return "🔄 Feed reiniciado."

    async def alertas(self, _: list[str]) -> str:
        s = self.services
        stored = await s.alert_store.list_rules()
        names = {p.id: p.name for p in s.ratios.pairs.values()}
        lines = ["🔔 Reglas de alerta"]
        if not stored:
            lines.append("No hay reglas.")
        for item in stored[:_MAX_ROWS]:
            rule = item.rule
            name = names.get(rule.pair_id, f"par {rule.pair_id}")
            state = "disparada" if item.state.value == "fired" else "armada"
            if not rule.active:
                state = "inactiva"
            lines.append(f"#{rule.id} {describe_rule(rule, name)} — {state}")
        firings = await s.alert_store.history(limit=5)
        lines.append("")
        lines.append("Últimos disparos:" if firings else "Sin disparos todavía.")
        for firing in firings:
            when = dt.datetime.fromtimestamp(firing["fired_at"], s.settings.tz)
            when_text = when.strftime("%d/%m %H:%M:%S")
            lines.append(
                f"{when_text} #{firing['rule_id'] or '—'} {firing['par']} {firing['field']}"
                f" = {es_number(firing['observed'])}"
            )
        return "\n".join(lines)
