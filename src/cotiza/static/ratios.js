// The live ratios table: one row per active pair; a click opens the pair's chart.

import { el, FrameBatch, updateColumn } from "./dom.js";
import { fixed, isNumber, pairTerm, ratio, signed } from "./format.js";
import { t } from "./i18n.js";

export const MAX_RATIO_ROWS = 200;

/** |z| at or beyond the band width (1.5σ) marks a pair worth a look. */
const Z_ALERT = 1.5;

const COLUMNS = [
  { key: "bid_ratio", format: ratio, flash: true },
  { key: "ask_ratio", format: ratio, flash: true },
  { key: "mid_ratio", format: ratio, flash: true },
  { key: "last_ratio", format: ratio, flash: true },
  { key: "ratio_spread", format: ratio },
  { key: "z_bid", format: (v) => signed(v, 2), z: true },
  { key: "z_ask", format: (v) => signed(v, 2), z: true },
  { key: "band_lower", format: ratio },
  { key: "band_upper", format: ratio },
  { key: "vol_ratio", format: (v) => fixed(v, 2) },
];

/** The label that tells a pair apart: "AL30-AL30D" plus its term and non-default client. */
export function pairLabel(item) {
  const extra = [pairTerm(item.base ?? ""), item.client_id === "default" ? "" : item.client_id];
  return { name: item.par ?? `${item.base}/${item.quote}`, extra: extra.filter(Boolean) };
}

export class RatiosTable {
  constructor({ tbody, onSelect }) {
    this.tbody = tbody;
    this.onSelect = onSelect;
    this.ratios = new Map(); // pair_id -> latest ratio message
    this.rows = new Map(); // pair_id -> { tr, cells, values }
    this.selected = null;
    this.batch = new FrameBatch((ids) => this.render(ids));
    this.renderEmpty();
  }

  update(message) {
    const id = message.pair_id;
    if (!Number.isInteger(id)) return;
    if (!this.ratios.has(id) && this.ratios.size >= MAX_RATIO_ROWS) return;
    this.ratios.set(id, message);
    this.batch.add(id);
  }

  /** Drop rows of pairs the server no longer reports (after a resubscription). */
  retain(pairIds) {
    const keep = new Set(pairIds);
    for (const [id, row] of this.rows) {
      if (keep.has(id)) continue;
      row.tr.remove();
      this.rows.delete(id);
      this.ratios.delete(id);
    }
    this.renderEmpty();
  }

  get(id) {
    return this.ratios.get(id);
  }

  select(id) {
    this.selected = id;
    for (const [rowId, row] of this.rows) row.tr.classList.toggle("selected", rowId === id);
  }

  renderEmpty() {
    if (this.rows.size > 0) return;
    this.tbody.replaceChildren(
      el("tr", { class: "empty" }, el("td", { colspan: "11", text: t("ratios.empty") })),
    );
  }

  createRow(id, item) {
    const label = pairLabel(item);
    const head = el(
      "th",
      { scope: "row", title: `${item.base} / ${item.quote}`, dataset: { col: "pair" } },
      el("span", { class: "ticker", text: label.name }),
      ...label.extra.map((text) => el("span", { class: "term", text })),
    );
    const cells = {};
    for (const column of COLUMNS) {
      cells[column.key] = el("td", { class: "num", dataset: { col: column.key } });
    }
    const tr = el(
      "tr",
      {
        class: "clickable",
        tabindex: "0",
        dataset: { testid: "ratio-row", pairId: String(id) },
      },
      head,
      ...COLUMNS.map((c) => cells[c.key]),
    );
    const open = () => this.onSelect(this.ratios.get(id));
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      }
    });
    if (this.rows.size === 0) this.tbody.replaceChildren();
    const after = [...this.rows.keys()].filter((other) => other > id).sort((a, b) => a - b)[0];
    this.tbody.insertBefore(tr, after === undefined ? null : this.rows.get(after).tr);
    const row = { tr, cells, values: {} };
    this.rows.set(id, row);
    tr.classList.toggle("selected", id === this.selected);
    return row;
  }

  render(ids, { flash = true } = {}) {
    for (const id of ids) {
      const item = this.ratios.get(id);
      if (!item) continue;
      const row = this.rows.get(id) ?? this.createRow(id, item);
      for (const column of COLUMNS) {
        const value = item[column.key];
        const cell = updateColumn(row, column, value, flash);
        if (column.z) cell.classList.toggle("alert", isNumber(value) && Math.abs(value) >= Z_ALERT);
      }
      const mid = item.mid_ratio;
      const outside =
        isNumber(mid) &&
        ((isNumber(item.band_upper) && mid > item.band_upper) ||
          (isNumber(item.band_lower) && mid < item.band_lower));
      row.cells.mid_ratio.classList.toggle("alert", outside);
    }
  }

  relabel() {
    this.render(this.ratios.keys(), { flash: false });
    this.renderEmpty();
  }
}
