// Every string the page shows, in one dictionary per language. Spanish is the default;
// the choice is kept in localStorage so it survives reloads.

const STRINGS = {
  es: {
    "app.subtitle": "Cotizaciones y ratios en tiempo real",
    "lang.switch": "English",
    "lang.switch_label": "Switch to English",

    "conn.label": "Conexión",
    "conn.connecting": "conectando…",
    "conn.live": "en vivo",
    "conn.reconnecting": "reconectando en {seconds} s",
    "conn.reconnecting_now": "reconectando…",
    "conn.offline": "sin conexión",
    "conn.unauthorized": "token requerido",
    "conn.retry": "Reintentar ahora",

    "feed.label": "Feed",
    "feed.state.running": "en marcha",
    "feed.state.stopped": "detenido",
    "feed.state.failed": "con falla",
    "feed.connection.idle": "inactivo",
    "feed.connection.connecting": "conectando",
    "feed.connection.connected": "conectado",
    "feed.connection.reconnecting": "reconectando",
    "feed.connection.stopped": "detenido",
    "feed.connection.failed": "con falla",
    "age.label": "Antigüedad de datos",
    "market.label": "Mercado",
    "market.open": "abierto",
    "market.closed": "cerrado",

    "quotes.title": "Cotizaciones",
    "quotes.filter": "Filtrar instrumentos…",
    "quotes.count": "{shown} de {total}",
    "quotes.empty": "Esperando cotizaciones…",
    "quotes.col.symbol": "Símbolo",
    "quotes.col.bid_size": "Cant. compra",
    "quotes.col.bid": "Compra",
    "quotes.col.offer": "Venta",
    "quotes.col.offer_size": "Cant. venta",
    "quotes.col.last": "Último",
    "quotes.col.last_size": "Cant. último",
    "quotes.col.change": "Var. %",
    "quotes.col.cl": "Cierre ant.",
    "quotes.col.age": "Antigüedad",

    "ratios.title": "Ratios",
    "ratios.hint": "Hacé clic en un par para ver su historial.",
    "ratios.empty": "Esperando ratios…",
    "ratios.col.pair": "Par",
    "ratios.col.bid": "Ratio compra",
    "ratios.col.ask": "Ratio venta",
    "ratios.col.mid": "Ratio medio",
    "ratios.col.last": "Último ratio",
    "ratios.col.spread": "Spread",
    "ratios.col.z_bid": "Z compra",
    "ratios.col.z_ask": "Z venta",
    "ratios.col.band_lower": "Banda inf.",
    "ratios.col.band_upper": "Banda sup.",
    "ratios.col.vol": "Vol. rel.",

    "chart.title": "Historial de {pair}",
    "chart.close": "Cerrar",
    "chart.range.1h": "1 h",
    "chart.range.1d": "1 día",
    "chart.range.1w": "1 semana",
    "chart.range.1m": "1 mes",
    "chart.loading": "Cargando historial…",
    "chart.empty": "Sin datos en el período.",
    "chart.error": "No se pudo cargar el historial: {detail}",
    "chart.legend.mid": "Ratio medio",
    "chart.legend.bands": "Bandas ±1,5σ",
    "chart.legend.sma": "Media 180",
    "chart.points": "{count} puntos · último {value}",

    "dashboard.title": "Tablero de ratios",
    "dashboard.empty": "Esperando datos del tablero…",
    "dashboard.updated": "Actualizado {time} · {ms} ms",
    "dashboard.error": "El tablero no pudo actualizarse: {detail}",
    "dashboard.col.pair": "Par",
    "dashboard.col.last": "Último ratio",
    "dashboard.col.session": "Promedio rueda",
    "dashboard.col.prev_day": "Día anterior",
    "dashboard.col.week": "1 semana",
    "dashboard.col.month": "1 mes",
    "dashboard.col.min": "Mínimo mensual",
    "dashboard.col.max": "Máximo mensual",

    "health.title": "Salud del servicio",
    "health.status.healthy": "saludable",
    "health.status.degraded": "degradado",
    "health.status.unhealthy": "no saludable",
    "health.unreachable": "El servicio no responde",
    "health.check.pass": "ok",
    "health.check.warn": "alerta",
    "health.check.fail": "falla",
    "health.col.check": "Chequeo",
    "health.col.status": "Estado",
    "health.ws_connections": "Conexiones WebSocket",
    "health.dashboard_subscribers": "Suscriptores del tablero",
    "health.loop_lag": "Retardo del event loop",
    "health.uptime": "Tiempo activo",
    "health.dashboard_worker": "Worker del tablero",
    "health.monitor_restarts": "Reinicios del monitor",
    "health.yes": "activo",
    "health.no": "inactivo",
    "health.checked_at": "Consultado {time}",

    "controls.title": "Control del feed",
    "controls.token": "Token de API",
    "controls.token_placeholder": "token",
    "controls.save": "Guardar",
    "controls.forget": "Olvidar",
    "controls.hint": "Ingresá el token para iniciar, detener o reiniciar el feed.",
    "controls.token_set": "Token guardado solo para esta pestaña.",
    "controls.start": "Iniciar",
    "controls.stop": "Detener",
    "controls.restart": "Reiniciar",
    "controls.working": "Enviando…",
    "controls.done": "Listo: {message}",
    "controls.unauthorized": "Token inválido.",
    "controls.failed": "Error: {detail}",

    "unit.s": "s",
    "unit.ms": "ms",
    "unit.min": "min",
    "unit.h": "h",
    "unit.d": "d",
    "unit.connections.one": "conexión",
    "unit.connections.other": "conexiones",
    "unit.pending.one": "pendiente",
    "unit.pending.other": "pendientes",
    "error.network": "sin respuesta del servicio",
  },
  en: {
    "app.subtitle": "Real-time quotes and ratios",
    "lang.switch": "Español",
    "lang.switch_label": "Cambiar a español",

    "conn.label": "Connection",
    "conn.connecting": "connecting…",
    "conn.live": "live",
    "conn.reconnecting": "reconnecting in {seconds} s",
    "conn.reconnecting_now": "reconnecting…",
    "conn.offline": "offline",
    "conn.unauthorized": "token required",
    "conn.retry": "Retry now",

    "feed.label": "Feed",
    "feed.state.running": "running",
    "feed.state.stopped": "stopped",
    "feed.state.failed": "failed",
    "feed.connection.idle": "idle",
    "feed.connection.connecting": "connecting",
    "feed.connection.connected": "connected",
    "feed.connection.reconnecting": "reconnecting",
    "feed.connection.stopped": "stopped",
    "feed.connection.failed": "failed",
    "age.label": "Data age",
    "market.label": "Market",
    "market.open": "open",
    "market.closed": "closed",

    "quotes.title": "Quotes",
    "quotes.filter": "Filter instruments…",
    "quotes.count": "{shown} of {total}",
    "quotes.empty": "Waiting for quotes…",
    "quotes.col.symbol": "Symbol",
    "quotes.col.bid_size": "Bid size",
    "quotes.col.bid": "Bid",
    "quotes.col.offer": "Offer",
    "quotes.col.offer_size": "Offer size",
    "quotes.col.last": "Last",
    "quotes.col.last_size": "Last size",
    "quotes.col.change": "Chg. %",
    "quotes.col.cl": "Prev. close",
    "quotes.col.age": "Age",

    "ratios.title": "Ratios",
    "ratios.hint": "Click a pair to see its history.",
    "ratios.empty": "Waiting for ratios…",
    "ratios.col.pair": "Pair",
    "ratios.col.bid": "Bid ratio",
    "ratios.col.ask": "Ask ratio",
    "ratios.col.mid": "Mid ratio",
    "ratios.col.last": "Last ratio",
    "ratios.col.spread": "Spread",
    "ratios.col.z_bid": "Z bid",
    "ratios.col.z_ask": "Z ask",
    "ratios.col.band_lower": "Lower band",
    "ratios.col.band_upper": "Upper band",
    "ratios.col.vol": "Vol. ratio",

    "chart.title": "{pair} history",
    "chart.close": "Close",
    "chart.range.1h": "1 h",
    "chart.range.1d": "1 day",
    "chart.range.1w": "1 week",
    "chart.range.1m": "1 month",
    "chart.loading": "Loading history…",
    "chart.empty": "No data in this period.",
    "chart.error": "Could not load the history: {detail}",
    "chart.legend.mid": "Mid ratio",
    "chart.legend.bands": "±1.5σ bands",
    "chart.legend.sma": "SMA 180",
    "chart.points": "{count} points · last {value}",

    "dashboard.title": "Ratio dashboard",
    "dashboard.empty": "Waiting for dashboard data…",
    "dashboard.updated": "Updated {time} · {ms} ms",
    "dashboard.error": "The dashboard could not refresh: {detail}",
    "dashboard.col.pair": "Pair",
    "dashboard.col.last": "Last ratio",
    "dashboard.col.session": "Session average",
    "dashboard.col.prev_day": "Previous day",
    "dashboard.col.week": "1 week",
    "dashboard.col.month": "1 month",
    "dashboard.col.min": "Monthly low",
    "dashboard.col.max": "Monthly high",

    "health.title": "Service health",
    "health.status.healthy": "healthy",
    "health.status.degraded": "degraded",
    "health.status.unhealthy": "unhealthy",
    "health.unreachable": "The service is not answering",
    "health.check.pass": "pass",
    "health.check.warn": "warn",
    "health.check.fail": "fail",
    "health.col.check": "Check",
    "health.col.status": "Status",
    "health.ws_connections": "WebSocket connections",
    "health.dashboard_subscribers": "Dashboard subscribers",
    "health.loop_lag": "Event-loop lag",
    "health.uptime": "Uptime",
    "health.dashboard_worker": "Dashboard worker",
    "health.monitor_restarts": "Monitor restarts",
    "health.yes": "running",
    "health.no": "idle",
    "health.checked_at": "Checked {time}",

    "controls.title": "Feed control",
    "controls.token": "API token",
    "controls.token_placeholder": "token",
    "controls.save": "Save",
    "controls.forget": "Forget",
    "controls.hint": "Enter the token to start, stop or restart the feed.",
    "controls.token_set": "Token kept for this tab only.",
    "controls.start": "Start",
    "controls.stop": "Stop",
    "controls.restart": "Restart",
    "controls.working": "Sending…",
    "controls.done": "Done: {message}",
    "controls.unauthorized": "Invalid token.",
    "controls.failed": "Error: {detail}",

    "unit.s": "s",
    "unit.ms": "ms",
    "unit.min": "min",
    "unit.h": "h",
    "unit.d": "d",
    "unit.connections.one": "connection",
    "unit.connections.other": "connections",
    "unit.pending.one": "pending",
    "unit.pending.other": "pending",
    "error.network": "the service did not answer",
  },
};

const STORAGE_KEY = "cotiza.lang";
const LOCALES = { es: "es-AR", en: "en-US" };

function storedLang() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value in STRINGS ? value : "es";
  } catch {
    return "es"; // storage can be disabled; the default language still works
  }
}

let current = storedLang();
const listeners = new Set();

export function lang() {
  return current;
}

export function locale() {
  return LOCALES[current];
}

/** The string for `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars) {
  const text = STRINGS[current][key] ?? STRINGS.es[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Fill every element marked with data-i18n (text) or data-i18n-<attr> (an attribute). */
export function translate(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const dataKey = `i18n${attr.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(el.dataset[dataKey]));
    }
  }
}

export function setLang(value) {
  if (!(value in STRINGS) || value === current) return;
  current = value;
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // Not persisted when storage is disabled; the switch still applies to this page.
  }
  translate();
  for (const listener of listeners) listener(value);
}

export function onLangChange(listener) {
  listeners.add(listener);
}
