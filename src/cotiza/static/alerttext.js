// How alert rules and firings read on the page: the watched value's name, the operator,
// the level, the pair's trader name, numbers typed in either language, and the service's
// refusals (its 422 detail) with the offending field named in the page's language.

import { fixed, isNumber, ratio } from "./format.js";
import { lang, locale, t } from "./i18n.js";
import { pairText } from "./pairs.js";

/** The page's key of each operator the service accepts. */
export const OP_KEYS = {
  ">": "gt",
  ">=": "ge",
  "<": "lt",
  "<=": "le",
  crosses_above: "crosses_above",
  crosses_below: "crosses_below",
};

/** Dimensionless fields, shown with two decimals rather than a ratio's six digits. */
const PLAIN_FIELDS = new Set(["z_bid", "z_ask", "vol_ratio"]);

function translatedOr(key, fallback) {
  const text = t(key);
  return text === key ? fallback : text;
}

/** "Ratio medio" for `mid_ratio` (the ratios table's own column names). */
export function fieldName(field) {
  return translatedOr(`ratios.col.${field}`, String(field));
}

/** "mayor que (>)": the operator in words, for the form's select. */
export function opName(op) {
  return translatedOr(`alerts.op.${OP_KEYS[op]}`, String(op));
}

/** ">", "≥", "cruza hacia arriba": the operator as it reads in a condition. */
export function opSymbol(op) {
  return translatedOr(`alerts.op_short.${OP_KEYS[op]}`, String(op));
}

let levelFormat = null;

/** A rule's level as the user typed it: up to six decimals, no padding zeros. */
export function level(value) {
  if (!isNumber(value)) return String(value ?? "");
  if (levelFormat?.resolvedOptions().locale !== locale()) {
    levelFormat = new Intl.NumberFormat(locale(), { maximumFractionDigits: 6 });
  }
  return levelFormat.format(value);
}

/** An observed value in the field's own format. */
export function observedText(field, value) {
  return PLAIN_FIELDS.has(field) ? fixed(value, 2) : ratio(value);
}

/** "Ratio medio > 1.450,5" */
export function conditionText(item) {
  return `${fieldName(item.field)} ${opSymbol(item.op)} ${level(item.value)}`;
}

/** The trader name of a pair ("Dólar MEP AL30/AL30D 24hs"), or the service's name for it. */
export function pairLabel(pairs, pairId, fallback) {
  const pair = pairs.get(pairId);
  if (pair) return pairText(pair);
  return fallback || `#${pairId}`;
}

/** "#3 Dólar MEP AL30/AL30D 24hs: Ratio medio > 0" (dialogs and button labels). */
export function ruleText(rule, pairs) {
  return `#${rule.id} ${pairLabel(pairs, rule.pair_id, rule.par)}: ${conditionText(rule)}`;
}

const PLAIN = /^[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?$/;
// Thousands separators as the page writes them ("1.450,5"; "0.001" is not grouped).
const GROUPED = {
  es: /^[-+]?[1-9]\d{0,2}(\.\d{3})+(,\d+)?$/,
  en: /^[-+]?[1-9]\d{0,2}(,\d{3})+(\.\d+)?$/,
};

/**
 * A number typed in the page's language ("1450,5", "1.450,5", "1,450.5", "0"); undefined
 * when empty. Text that is not a number comes back unchanged, so that the service, which
 * alone decides what a rule may hold, answers with its own 422.
 */
export function parseNumber(text) {
  const value = String(text ?? "").trim();
  if (value === "") return undefined;
  let normal = null;
  if (GROUPED[lang()]?.test(value)) {
    normal = lang() === "es" ? value.replaceAll(".", "").replace(",", ".") : value.replaceAll(",", "");
  } else if (PLAIN.test(value) && !(lang() === "en" && value.includes(","))) {
    normal = value.replace(",", ".");
  }
  const number = normal === null ? Number.NaN : Number(normal);
  return Number.isFinite(number) ? number : value;
}

/**
 * One validation error in the page's language: FastAPI's `type` (with its limits in `ctx`)
 * has a translation; an unknown type keeps the service's own English `msg`.
 */
function validationText(item) {
  const key = `validation.${item?.type}`;
  const text = t(key, item?.ctx ?? {});
  return text === key ? String(item?.msg ?? "") : text;
}

/**
 * The service's refusal as one line, and the request field it names (or null). FastAPI's
 * validation errors are a list of `{loc, msg}`; the service's own are a single string.
 */
export function refusal(body, fieldLabel) {
  const detail = body?.detail;
  if (typeof detail === "string") return { text: detail, field: null };
  if (!Array.isArray(detail) || detail.length === 0) return { text: "", field: null };
  let field = null;
  const parts = detail.map((item) => {
    const loc = Array.isArray(item?.loc) ? item.loc.filter((part) => part !== "body") : [];
    const name = typeof loc[0] === "string" ? loc[0] : null;
    field ??= name;
    const label = name ? fieldLabel(name) : "";
    const message = validationText(item);
    return label ? `${label}: ${message}` : message;
  });
  return { text: parts.join(" · "), field };
}
