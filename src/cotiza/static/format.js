// Number, time and symbol formatting. Numbers follow the page's language; every time is
// shown in the market's time zone (the service's `market_tz`), never the browser's.

import { locale, t } from "./i18n.js";

export const DASH = "—";

/** The service's default market zone, used until its status says otherwise. */
export const DEFAULT_ZONE = "America/Argentina/Buenos_Aires";

const formatters = new Map();
const timeFormatters = new Map();
let zone = DEFAULT_ZONE;

function formatter(min, max, signed = false) {
  const key = `${locale()}|${min}|${max}|${signed}`;
  let fmt = formatters.get(key);
  if (!fmt) {
    fmt = new Intl.NumberFormat(locale(), {
      minimumFractionDigits: min,
      maximumFractionDigits: max,
      signDisplay: signed ? "exceptZero" : "auto",
    });
    formatters.set(key, fmt);
  }
  return fmt;
}

export function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

export function fixed(value, digits = 2) {
  return isNumber(value) ? formatter(digits, digits).format(value) : DASH;
}

/** Prices: two decimals, more for instruments quoted below one. */
export function price(value) {
  if (!isNumber(value)) return DASH;
  return fixed(value, Math.abs(value) < 1 ? 4 : 2);
}

/** Ratios span 1.02 (AL30D/AL30C) to 1450 (AL30/AL30D): keep about six significant digits. */
export function ratioDigits(value) {
  const size = Math.abs(value);
  return size >= 1000 ? 2 : size >= 10 ? 3 : 5;
}

export function ratio(value) {
  return isNumber(value) ? fixed(value, ratioDigits(value)) : DASH;
}

export function quantity(value) {
  return isNumber(value) ? formatter(0, 0).format(value) : DASH;
}

export function signed(value, digits = 2) {
  return isNumber(value) ? formatter(digits, digits, true).format(value) : DASH;
}

export function percent(value) {
  return isNumber(value) ? `${signed(value, 2)} %` : DASH;
}

/** A duration in seconds, compact: "0,4 s", "12 s", "3 min", "2 h", "5 d". */
export function duration(seconds) {
  if (!isNumber(seconds)) return DASH;
  const s = Math.max(0, seconds);
  if (s < 10) return `${fixed(s, 1)} ${t("unit.s")}`;
  if (s < 120) return `${Math.round(s)} ${t("unit.s")}`;
  if (s < 7200) return `${Math.round(s / 60)} ${t("unit.min")}`;
  if (s < 172800) return `${Math.round(s / 3600)} ${t("unit.h")}`;
  return `${Math.round(s / 86400)} ${t("unit.d")}`;
}

// ------------------------------------------------------------------------------ time

/** Use `name` (an IANA zone from the service's status) for every time from now on. */
export function setMarketZone(name) {
  if (typeof name !== "string" || name === "" || name === zone) return false;
  try {
    new Intl.DateTimeFormat("en", { timeZone: name });
  } catch {
    return false; // an unknown zone keeps the previous one rather than the browser's
  }
  zone = name;
  timeFormatters.clear();
  return true;
}

export function marketZone() {
  return zone;
}

/** "hora BA" for the Argentine zones, "hora de mercado (Zone)" for any other. */
export function zoneLabel() {
  if (zone.startsWith("America/Argentina/")) return t("tz.ba");
  return t("tz.other", { zone: zone.split("/").at(-1).replaceAll("_", " ") });
}

const TIME_STYLES = {
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" },
  minute: { hour: "2-digit", minute: "2-digit", hourCycle: "h23" },
  date: { day: "2-digit", month: "2-digit", year: "numeric" },
  dateTime: {
    day: "2-digit",
    month: "2-digit",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  },
  parts: {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  },
};

function timeFormatter(style) {
  const lang = style === "parts" ? "en-US" : locale();
  const key = `${lang}|${style}`;
  let fmt = timeFormatters.get(key);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat(lang, { ...TIME_STYLES[style], timeZone: zone });
    timeFormatters.set(key, fmt);
  }
  return fmt;
}

function formatTime(epochSeconds, style) {
  if (!isNumber(epochSeconds)) return DASH;
  return timeFormatter(style).format(new Date(epochSeconds * 1000));
}

/** "17:04:05" in the market's zone. */
export function clockTime(epochSeconds) {
  return formatTime(epochSeconds, "time");
}

export function shortTime(epochSeconds) {
  return formatTime(epochSeconds, "minute");
}

export function dateOnly(epochSeconds) {
  return formatTime(epochSeconds, "date");
}

/** "30/11/2026, 17:04:05" in the market's zone. */
export function dateTime(epochSeconds) {
  return formatTime(epochSeconds, "dateTime");
}

/** A time with its zone named: "17:04:05 hora BA". */
export function zonedClock(epochSeconds) {
  return isNumber(epochSeconds) ? `${clockTime(epochSeconds)} ${zoneLabel()}` : DASH;
}

export function zonedDateTime(epochSeconds) {
  return isNumber(epochSeconds) ? `${dateTime(epochSeconds)} ${zoneLabel()}` : DASH;
}

/** The market-zone wall clock of an instant: { year, month, day, hour, minute, second }. */
export function zoneParts(epochSeconds) {
  const parts = {};
  for (const part of timeFormatter("parts").formatToParts(new Date(epochSeconds * 1000))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value) % (part.type === "hour" ? 24 : Infinity);
  }
  return parts;
}

/** The market zone's offset from UTC at an instant, in seconds (−10800 for Buenos Aires). */
export function zoneOffset(epochSeconds) {
  const p = zoneParts(epochSeconds);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) / 1000;
  return asUtc - Math.floor(epochSeconds);
}

/** The instant at which the market zone's wall clock reads the given time. */
export function zonedToEpoch(year, month, day, hour = 0, minute = 0) {
  const guess = Date.UTC(year, month - 1, day, hour, minute) / 1000;
  const first = guess - zoneOffset(guess);
  return guess - zoneOffset(first);
}

/** "2026-11-30T17:04" in the market zone, the value of a datetime-local input. */
export function inputValue(epochSeconds) {
  const p = zoneParts(epochSeconds);
  const two = (n) => String(n).padStart(2, "0");
  return `${p.year}-${two(p.month)}-${two(p.day)}T${two(p.hour)}:${two(p.minute)}`;
}

/** Parse a datetime-local value as market-zone time; null when it is not one. */
export function parseInputValue(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(String(value));
  if (!match) return null;
  const [, y, mo, d, h, mi] = match.map(Number);
  return zonedToEpoch(y, mo, d, h, mi);
}

/** ISO 8601 with the market zone's offset, for CSV files: "2026-11-30T17:04:05-03:00". */
export function isoInZone(epochSeconds) {
  if (!isNumber(epochSeconds)) return "";
  const p = zoneParts(epochSeconds);
  const offset = Math.round(zoneOffset(epochSeconds) / 60);
  const two = (n) => String(Math.abs(n)).padStart(2, "0");
  const sign = offset < 0 ? "-" : "+";
  const date = `${p.year}-${two(p.month)}-${two(p.day)}`;
  const time = `${two(p.hour)}:${two(p.minute)}:${two(p.second)}`;
  return `${date}T${time}${sign}${two(Math.trunc(offset / 60))}:${two(offset % 60)}`;
}

// ---------------------------------------------------------------------------- symbols

/**
 * Split a Primary symbol for display: "MERV - XMEV - AL30 - 24hs" -> ["AL30", "24hs"];
 * futures such as "DLR/DIC26" stay whole.
 */
export function splitSymbol(symbol) {
  const parts = String(symbol).split(" - ").map((part) => part.trim());
  if (parts.length >= 4 && parts[0] === "MERV") return [parts[2], parts.slice(3).join(" ")];
  if (parts.length === 3 && parts[0] === "MERV") return [parts[2], ""];
  return [String(symbol), ""];
}
