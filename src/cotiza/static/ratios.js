// The live ratios table: one row per active pair, named the way traders name it; a click,
// Enter or a tap opens the pair's chart. Sortable, exportable, rows grey as they age.

import { el, FrameBatch, updateColumn } from "./dom.js";
import { AGE_LIMIT_S } from "./freshness.js";
import { fixed, isNumber, isoInZone, ratio, signed, zonedDateTime } from "./format.js";
import { t } from "./i18n.js";
import { pairInfo, pairNodes, pairText, pairTitle } from "./pairs.js";
import { csvText, download, fileStamp, Sorter } from "./table.js";

export const MAX_RATIO_ROWS = 200;

/** |z| at or beyond the band width (1.5σ) marks a pair worth a look. */
const Z_ALERT = 1.5;
/** A ratio sample older than this (market open, page live) greys its row. */
const ROW_STALE_S = 60;

export const RATIO_COLUMNS = [
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

export class RatiosTable {
  constructor({ table, sortSelect, exportButton, onSelect, serverNow, gate }) {
    this.table = table;
    this.tbody = table.tBodies[0];
    this.onSelect = onSelect;
    this.serverNow = serverNow;
    this.gate = gate;
    this.ratios = new Map(); // pair_id -> latest ratio message
    this.rows = new Map(); // pair_id -> { tr, cells, values }
    this.selected = null;
    this.fresh = true;
    this.marketOpen = null;
    this.batch = new FrameBatch((ids) => this.render(ids), {
      interval: () => gate.redrawInterval(),
    });
    this.sorter = new Sorter({ thead: table.tHead, select: sortSelect, onChange: () => this.arrange() });
    exportButton.addEventListener("click", () => this.exportCsv());
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
    if (this.rows.size > 0) {
      this.tbody.querySelector("tr.empty")?.remove();
      return;
    }
    this.tbody.replaceChildren(
      el("tr", { class: "empty" }, el("td", { colspan: "11", text: t("ratios.empty") })),
    );
  }

  createRow(id, item) {
    const head = el(
      "th",
      { scope: "row", title: pairTitle(item), dataset: { col: "pair" } },
      ...pairNodes(item),
    );
    const cells = {};
    for (const column of RATIO_COLUMNS) {
      cells[column.key] = el("td", { class: "num", dataset: { col: column.key } });
    }
    const tr = el(
      "tr",
      { class: "clickable", tabindex: "0", dataset: { testid: "ratio-row", pairId: String(id) } },
      head,
      ...RATIO_COLUMNS.map((c) => cells[c.key]),
    );
    const open = () => this.onSelect(this.ratios.get(id), tr);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      }
    });
    this.tbody.querySelector("tr.empty")?.remove();
    this.tbody.append(tr);
    const row = { tr, cells, values: {}, head };
    this.rows.set(id, row);
    this.labelRow(row, item);
    tr.classList.toggle("selected", id === this.selected);
    this.arrange();
    return row;
  }

  labelRow(row, item) {
    for (const [key, cell] of Object.entries(row.cells)) cell.dataset.label = t(`ratios.col.${key}`);
    row.head.replaceChildren(...pairNodes(item));
    row.head.title = pairTitle(item);
    row.tr.setAttribute("aria-label", t("ratios.open", { pair: pairText(item) }));
  }

  render(ids, { flash = true } = {}) {
    for (const id of ids) {
      const item = this.ratios.get(id);
      if (!item) continue;
      const row = this.rows.get(id) ?? this.createRow(id, item);
      for (const column of RATIO_COLUMNS) {
        const value = item[column.key];
        const cell = updateColumn(row, column, value, flash && this.gate);
        if (column.z) cell.classList.toggle("alert", isNumber(value) && Math.abs(value) >= Z_ALERT);
      }
      const mid = item.mid_ratio;
      const outside =
        isNumber(mid) &&
        ((isNumber(item.band_upper) && mid > item.band_upper) ||
          (isNumber(item.band_lower) && mid < item.band_lower));
      row.cells.mid_ratio.classList.toggle("alert", outside);
      row.cells.mid_ratio.title = isNumber(item.asof) ? zonedDateTime(item.asof) : "";
      this.markStale(id, row);
    }
  }

  markStale(id, row) {
    const asof = this.ratios.get(id)?.asof;
    const age = isNumber(asof) ? this.serverNow() / 1000 - asof : null;
    const limit = this.fresh ? ROW_STALE_S : AGE_LIMIT_S;
    const watchful = !this.fresh || this.marketOpen !== false;
    const stale = watchful && (!isNumber(age) || age >= limit);
    if ((row.tr.dataset.stale === "true") !== stale) row.tr.dataset.stale = String(stale);
  }

  refreshAges(fresh, marketOpen) {
    this.fresh = fresh;
    this.marketOpen = marketOpen;
    for (const [id, row] of this.rows) this.markStale(id, row);
    if (this.sorter.key) this.arrange();
  }

  /** Visible rows in display order (pair id order unless sorted). */
  orderedIds() {
    const ids = [...this.rows.keys()].sort((a, b) => a - b);
    return this.sorter.apply(ids, (id, key) =>
      key === "pair" ? pairText(this.ratios.get(id)) : this.ratios.get(id)?.[key],
    );
  }

  arrange() {
    let previous = null;
    for (const id of this.orderedIds()) {
      const tr = this.rows.get(id).tr;
      const expected = previous ? previous.nextElementSibling : this.tbody.firstElementChild;
      if (expected !== tr) {
        if (previous) previous.after(tr);
        else this.tbody.prepend(tr);
      }
      previous = tr;
    }
  }

  exportCsv() {
    const header = [
      t("ratios.col.pair"),
      t("csv.base"),
      t("csv.quote"),
      ...RATIO_COLUMNS.map((c) => t(`ratios.col.${c.key}`)),
      t("csv.time"),
    ];
    const rows = this.orderedIds().map((id) => {
      const item = this.ratios.get(id);
      const info = pairInfo(item);
      return [
        [info.name, info.kind ? info.legs : "", info.settlement].filter(Boolean).join(" "),
        item.base,
        item.quote,
        ...RATIO_COLUMNS.map((c) => item[c.key] ?? null),
        isoInZone(item.asof),
      ];
    });
    const stamp = fileStamp(isoInZone(this.serverNow() / 1000));
    download(`cotiza-${t("csv.name.ratios")}-${stamp}.csv`, csvText(header, rows));
  }

  relabel() {
    for (const [id, row] of this.rows) this.labelRow(row, this.ratios.get(id));
    this.render(this.ratios.keys(), { flash: false });
    this.sorter.relabel();
    this.renderEmpty();
  }
}
