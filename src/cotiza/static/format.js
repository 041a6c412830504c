// Number, time and symbol formatting in the current language's locale.

import { locale, t } from "./i18n.js";

export const DASH = "—";

const formatters = new Map();

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
export function ratio(value) {
  if (!isNumber(value)) return DASH;
  const size = Math.abs(value);
  return fixed(value, size >= 1000 ? 2 : size >= 10 ? 3 : 5);
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

export function clockTime(epochSeconds) {
  if (!isNumber(epochSeconds)) return DASH;
  return new Date(epochSeconds * 1000).toLocaleTimeString(locale(), { hour12: false });
}

export function dateTime(epochSeconds) {
  if (!isNumber(epochSeconds)) return DASH;
  return new Date(epochSeconds * 1000).toLocaleString(locale(), { hour12: false });
}

/** Axis label for a time, coarser as the visible span grows. */
export function axisTime(epochSeconds, spanSeconds) {
  const date = new Date(epochSeconds * 1000);
  if (spanSeconds <= 2 * 86400) {
    return date.toLocaleTimeString(locale(), { hour: "2-digit", minute: "2-digit", hour12: false });
  }
  return date.toLocaleDateString(locale(), { day: "2-digit", month: "2-digit" });
}

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

/** The settlement term of a pair's base leg ("24hs", "CI"), to tell same-named pairs apart. */
export function pairTerm(base) {
  return splitSymbol(base)[1];
}
