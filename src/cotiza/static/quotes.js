// The live quotes table: one row per instrument, cells flash when their value changes.

import { el, FrameBatch, setCell, updateColumn } from "./dom.js";
import { duration, isNumber, percent, price, quantity, splitSymbol } from "./format.js";
import { t } from "./i18n.js";

/** More rows than this are not shown: the page must stay light after hours of use. */
export const MAX_QUOTE_ROWS = 500;

const COLUMNS = [
  { key: "bid_size", format: quantity },
  { key: "bid", format: price, flash: true },
  { key: "offer", format: price, flash: true },
  { key: "offer_size", format: quantity },
  { key: "last", format: price, flash: true },
  { key: "last_size", format: quantity },
  { key: "change", format: percent, signClass: true },
  { key: "cl", format: price },
];

function changeVsClose(tick) {
  if (!isNumber(tick.last) || !isNumber(tick.cl) || tick.cl === 0) return null;
  return ((tick.last - tick.cl) / tick.cl) * 100;
}

export class QuotesTable {
  constructor({ tbody, count, filter, serverNow }) {
    this.tbody = tbody;
    this.count = count;
    this.filter = filter;
    this.serverNow = serverNow;
    this.quotes = new Map(); // symbol -> latest tick (with `change`)
    this.rows = new Map(); // symbol -> { tr, cells, values }
    this.batch = new FrameBatch((symbols) => this.render(symbols));
    this.query = "";
    filter.addEventListener("input", () => {
      this.query = filter.value.trim().toLowerCase();
      for (const [symbol, row] of this.rows) row.tr.hidden = !this.matches(symbol);
      this.updateCount();
    });
    this.renderEmpty();
  }

  get size() {
    return this.quotes.size;
  }

  update(tick) {
    if (typeof tick.symbol !== "string") return;
    if (!this.quotes.has(tick.symbol) && this.quotes.size >= MAX_QUOTE_ROWS) return;
    this.quotes.set(tick.symbol, { ...tick, change: changeVsClose(tick) });
    this.batch.add(tick.symbol);
  }

  matches(symbol) {
    return this.query === "" || symbol.toLowerCase().includes(this.query);
  }

  renderEmpty() {
    if (this.quotes.size > 0) return;
    this.tbody.replaceChildren(
      el("tr", { class: "empty" }, el("td", { colspan: "10", text: t("quotes.empty") })),
    );
    this.updateCount();
  }

  createRow(symbol) {
    const [ticker, term] = splitSymbol(symbol);
    const head = el(
      "th",
      { scope: "row", title: symbol, dataset: { col: "symbol" } },
      el("span", { class: "ticker", text: ticker }),
      term ? el("span", { class: "term", text: term }) : null,
    );
    const cells = {};
    for (const column of COLUMNS) {
      cells[column.key] = el("td", { class: "num", dataset: { col: column.key } });
    }
    cells.age = el("td", { class: "num age", dataset: { col: "age" } });
    const tr = el(
      "tr",
      { dataset: { testid: "quote-row", symbol } },
      head,
      ...COLUMNS.map((c) => cells[c.key]),
      cells.age,
    );
    tr.hidden = !this.matches(symbol);
    // Keep rows sorted by symbol so that instruments do not jump around.
    if (this.rows.size === 0) this.tbody.replaceChildren();
    const after = [...this.rows.keys()].filter((s) => s > symbol).sort()[0];
    this.tbody.insertBefore(tr, after ? this.rows.get(after).tr : null);
    const row = { tr, cells, values: {} };
    this.rows.set(symbol, row);
    return row;
  }

  render(symbols, { flash = true } = {}) {
    let added = false;
    for (const symbol of symbols) {
      const quote = this.quotes.get(symbol);
      if (!quote) continue;
      let row = this.rows.get(symbol);
      if (!row) {
        row = this.createRow(symbol);
        added = true;
      }
      for (const column of COLUMNS) {
        const value = quote[column.key];
        const cell = updateColumn(row, column, value, flash);
        if (column.signClass) {
          cell.classList.toggle("pos", isNumber(value) && value > 0);
          cell.classList.toggle("neg", isNumber(value) && value < 0);
        }
      }
      this.renderAge(symbol, row);
    }
    if (added) this.updateCount();
  }

  renderAge(symbol, row) {
    const quote = this.quotes.get(symbol);
    const age = isNumber(quote?.ts_ms) ? (this.serverNow() - quote.ts_ms) / 1000 : null;
    setCell(row.cells.age, duration(age));
    row.cells.age.classList.toggle("stale", isNumber(age) && age > 60);
  }

  /** Called every second: ages move even when prices do not. */
  refreshAges() {
    for (const [symbol, row] of this.rows) {
      if (!row.tr.hidden) this.renderAge(symbol, row);
    }
  }

  /** Re-render every cell in the current language, without flashing. */
  relabel() {
    this.render(this.quotes.keys(), { flash: false });
    if (this.quotes.size === 0) this.renderEmpty();
    this.updateCount();
  }

  updateCount() {
    let shown = 0;
    for (const row of this.rows.values()) if (!row.tr.hidden) shown += 1;
    this.count.textContent = t("quotes.count", { shown, total: this.rows.size });
  }
}
