// The live quotes table: one row per instrument (a card on a phone), sortable, filtered by
// what is displayed, with a watchlist view and CSV export. Cells flash when their value
// changes unless updates come too fast to read; rows grey out as their data ages.

import { el, FrameBatch, setCell, updateColumn } from "./dom.js";
import { AGE_LIMIT_S } from "./freshness.js";
import {
  duration,
  isNumber,
  isoInZone,
  percent,
  price,
  quantity,
  splitSymbol,
} from "./format.js";
import { t } from "./i18n.js";
import { csvText, download, filterWords, fileStamp, matchesWords, Sorter } from "./table.js";

/** More rows than this are not shown: the page must stay light after hours of use. */
export const MAX_QUOTE_ROWS = 500;
/** A row whose quote is older than this (market open, page live) is greyed out. */
const ROW_STALE_S = 60;

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
const LIVE_KEYS = new Set(["bid", "offer", "last", "change", "bid_size", "offer_size", "last_size", "age"]);

function changeVsClose(tick) {
  if (!isNumber(tick.last) || !isNumber(tick.cl) || tick.cl === 0) return null;
  return ((tick.last - tick.cl) / tick.cl) * 100;
}

export class QuotesTable {
  constructor({ table, count, filter, sortSelect, viewButtons, exportButton, watchlist, serverNow, gate }) {
    this.table = table;
    this.tbody = table.tBodies[0];
    this.count = count;
    this.filter = filter;
    this.serverNow = serverNow;
    this.gate = gate;
    this.watchlist = watchlist;
    this.quotes = new Map(); // symbol -> latest tick (with `change`)
    this.rows = new Map(); // symbol -> { tr, cells, values, text }
    this.batch = new FrameBatch((symbols) => this.render(symbols), {
      interval: () => gate.redrawInterval(),
    });
    this.words = [];
    this.view = "all";
    this.order = [];
    this.fresh = true;
    this.marketOpen = null;
    this.sorter = new Sorter({ thead: table.tHead, select: sortSelect, onChange: () => this.arrange() });
    filter.addEventListener("input", () => {
      this.words = filterWords(filter.value);
      this.arrange();
    });
    this.viewButtons = viewButtons;
    for (const button of viewButtons) {
      button.addEventListener("click", () => this.setView(button.dataset.view));
    }
    exportButton.addEventListener("click", () => this.exportCsv());
    watchlist.onChange(() => {
      for (const [symbol, row] of this.rows) this.markWatched(symbol, row);
      this.arrange();
    });
    this.markView();
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

  setView(view) {
    this.view = view === "watch" ? "watch" : "all";
    this.markView();
    this.arrange();
  }

  markView() {
    for (const button of this.viewButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.view === this.view));
    }
    this.table.dataset.view = this.view;
  }

  renderEmpty() {
    if (this.rows.size > 0 && this.visibleCount() > 0) {
      this.tbody.querySelector("tr.empty")?.remove();
      return;
    }
    let key = "quotes.empty";
    if (this.rows.size > 0) key = this.view === "watch" && this.watchlist.size === 0 ? "quotes.watch_empty" : "quotes.no_match";
    let empty = this.tbody.querySelector("tr.empty");
    if (!empty) {
      empty = el("tr", { class: "empty" }, el("td", { colspan: "10" }));
      this.tbody.prepend(empty);
    }
    empty.firstChild.textContent = t(key);
  }

  createRow(symbol) {
    const [ticker, term] = splitSymbol(symbol);
    const star = el("button", {
      type: "button",
      class: "icon star",
      dataset: { testid: "watch-toggle" },
    });
    star.addEventListener("click", () => this.watchlist.toggle(symbol));
    const up = el("button", { type: "button", class: "icon move", dataset: { testid: "watch-up" }, text: "↑" });
    const down = el("button", { type: "button", class: "icon move", dataset: { testid: "watch-down" }, text: "↓" });
    up.addEventListener("click", () => this.watchlist.move(symbol, -1));
    down.addEventListener("click", () => this.watchlist.move(symbol, 1));
    const head = el(
      "th",
      { scope: "row", title: symbol, dataset: { col: "symbol" } },
      star,
      el("span", { class: "name" }, el("span", { class: "ticker", text: ticker }), term ? el("span", { class: "term", text: term }) : null),
      el("span", { class: "moves" }, up, down),
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
    const row = { tr, cells, values: {}, text: `${ticker} ${term} ${symbol}`, star, ticker, term, up, down };
    this.rows.set(symbol, row);
    this.labelRow(row);
    this.markWatched(symbol, row);
    this.tbody.append(tr);
    return row;
  }

  /** Labels shown before each value in the phone's card layout (CSS `attr(data-label)`). */
  labelRow(row) {
    for (const [key, cell] of Object.entries(row.cells)) cell.dataset.label = t(`quotes.col.${key}`);
    const name = [row.ticker, row.term].filter(Boolean).join(" ");
    row.up.setAttribute("aria-label", t("watch.up", { name }));
    row.down.setAttribute("aria-label", t("watch.down", { name }));
    this.markWatched(null, row);
  }

  markWatched(symbol, row) {
    const watched = this.watchlist.has(row.tr.dataset.symbol);
    const name = [row.ticker, row.term].filter(Boolean).join(" ");
    row.star.textContent = watched ? "★" : "☆";
    row.star.setAttribute("aria-pressed", String(watched));
    row.star.setAttribute("aria-label", t("watch.toggle", { name }));
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
        const cell = updateColumn(row, column, value, flash && this.gate);
        if (column.signClass) {
          cell.classList.toggle("pos", isNumber(value) && value > 0);
          cell.classList.toggle("neg", isNumber(value) && value < 0);
        }
      }
      this.renderAge(symbol, row);
    }
    if (added) this.arrange();
  }

  age(symbol) {
    const quote = this.quotes.get(symbol);
    return isNumber(quote?.ts_ms) ? (this.serverNow() - quote.ts_ms) / 1000 : null;
  }

  renderAge(symbol, row) {
    const age = this.age(symbol);
    setCell(row.cells.age, duration(age));
    row.values.age = age;
    const limit = this.fresh ? ROW_STALE_S : AGE_LIMIT_S;
    const watchful = !this.fresh || this.marketOpen !== false;
    const stale = watchful && isNumber(age) && age >= limit;
    row.cells.age.classList.toggle("stale", isNumber(age) && age > ROW_STALE_S);
    if ((row.tr.dataset.stale === "true") !== stale) row.tr.dataset.stale = String(stale);
  }

  /** Called every second: ages move even when prices do not; a live sort is refreshed. */
  refreshAges(fresh, marketOpen) {
    this.fresh = fresh;
    this.marketOpen = marketOpen;
    for (const [symbol, row] of this.rows) this.renderAge(symbol, row);
    if (this.sorter.key && LIVE_KEYS.has(this.sorter.key)) this.arrange();
  }

  /** The symbols to show, in display order. */
  visibleSymbols() {
    let symbols = [...this.rows.keys()].filter((symbol) => {
      if (this.view === "watch" && !this.watchlist.has(symbol)) return false;
      return matchesWords(this.rows.get(symbol).text, this.words);
    });
    symbols.sort((a, b) => {
      if (this.view === "watch") return this.watchlist.position(a) - this.watchlist.position(b);
      return a < b ? -1 : a > b ? 1 : 0;
    });
    symbols = this.sorter.apply(symbols, (symbol, key) =>
      key === "symbol" ? this.rows.get(symbol).text : this.rows.get(symbol).values[key],
    );
    return symbols;
  }

  visibleCount() {
    return this.order.length;
  }

  /** Show, hide and order rows; the DOM is touched only where the order changed. */
  arrange() {
    const order = this.visibleSymbols();
    const shown = new Set(order);
    for (const [symbol, row] of this.rows) row.tr.hidden = !shown.has(symbol);
    const same = order.length === this.order.length && order.every((s, i) => s === this.order[i]);
    if (!same) {
      let previous = null;
      for (const symbol of order) {
        const tr = this.rows.get(symbol).tr;
        const expected = previous ? previous.nextElementSibling : this.tbody.firstElementChild;
        if (expected !== tr) {
          if (previous) previous.after(tr);
          else this.tbody.prepend(tr);
        }
        previous = tr;
      }
    }
    this.order = order;
    this.table.dataset.sorted = String(this.sorter.key !== null);
    this.renderEmpty();
    this.updateCount();
  }

  exportCsv() {
    const header = ["symbol", ...COLUMNS.map((c) => c.key), "ts"].map((key) =>
      key === "ts" ? t("csv.time") : key === "symbol" ? t("quotes.col.symbol") : t(`quotes.col.${key}`),
    );
    header.splice(1, 0, t("csv.instrument"));
    const rows = this.order.map((symbol) => {
      const quote = this.quotes.get(symbol) ?? {};
      const row = this.rows.get(symbol);
      const name = [row.ticker, row.term].filter(Boolean).join(" ");
      return [name, symbol, ...COLUMNS.map((c) => quote[c.key] ?? null), isoInZone(quote.ts_ms / 1000)];
    });
    const stamp = fileStamp(isoInZone(this.serverNow() / 1000));
    download(`cotiza-${t("csv.name.quotes")}-${stamp}.csv`, csvText(header, rows));
  }

  /** Re-render every cell in the current language, without flashing. */
  relabel() {
    this.render(this.quotes.keys(), { flash: false });
    for (const row of this.rows.values()) this.labelRow(row);
    this.sorter.relabel();
    this.renderEmpty();
    this.updateCount();
  }

  updateCount() {
    this.count.textContent = t("quotes.count", { shown: this.order.length, total: this.rows.size });
  }
}
