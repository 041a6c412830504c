// Pairs named the way traders name them: "Dólar MEP · AL30/AL30D · 24hs". The kind is
// derived from the legs' tickers (AL30 against AL30D is MEP, against AL30C is CCL, AL30D
// against AL30C is the canje), never from the server's `par` string, so a change of that
// name cannot break the labels.

import { el } from "./dom.js";
import { splitSymbol } from "./format.js";
import { t } from "./i18n.js";

/** "mep", "ccl", "canje" or null, from the base and quote tickers. */
export function pairKind(baseTicker, quoteTicker) {
  if (!baseTicker || !quoteTicker) return null;
  if (quoteTicker === `${baseTicker}D`) return "mep";
  if (quoteTicker === `${baseTicker}C`) return "ccl";
  if (baseTicker.endsWith("D") && quoteTicker === `${baseTicker.slice(0, -1)}C`) return "canje";
  return null;
}

/** Everything needed to show a pair: { kind, name, legs, settlement, client }. */
export function pairInfo(item) {
  const [baseTicker, baseTerm] = splitSymbol(item?.base ?? "");
  const [quoteTicker, quoteTerm] = splitSymbol(item?.quote ?? "");
  const kind = pairKind(baseTicker, quoteTicker);
  const legs = `${baseTicker}/${quoteTicker}`;
  const settlement =
    baseTerm === quoteTerm ? baseTerm : [baseTerm, quoteTerm].filter(Boolean).join("/");
  const client = item?.client_id && item.client_id !== "default" ? item.client_id : "";
  return { kind, name: kind ? t(`pair.kind.${kind}`) : legs, legs, settlement, client };
}

/** One line of text: "Dólar MEP AL30/AL30D 24hs" (titles, filters, CSV). */
export function pairText(item) {
  const info = pairInfo(item);
  return [info.name, info.kind ? info.legs : "", info.settlement, info.client]
    .filter(Boolean)
    .join(" ");
}

/** The cell content: the name in bold, the legs and settlement beside it. */
export function pairNodes(item) {
  const info = pairInfo(item);
  const detail = [info.kind ? info.legs : "", info.settlement, info.client].filter(Boolean);
  return [
    el("span", { class: "ticker", text: info.name }),
    ...detail.map((text) => el("span", { class: "term", text })),
  ];
}

/** The tooltip of a pair: what it is and how it is formed. */
export function pairTitle(item) {
  const info = pairInfo(item);
  const kind = info.kind ? t(`pair.explain.${info.kind}`) : "";
  return [`${item?.base ?? ""} / ${item?.quote ?? ""}`, kind].filter(Boolean).join(" — ");
}
