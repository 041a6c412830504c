// The watchlist: instruments a user picked, in the order they chose, kept in this browser.

const STORAGE_KEY = "cotiza.watchlist";
const MAX_ITEMS = 200;

function load() {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "[]");
    return Array.isArray(value) ? value.filter((s) => typeof s === "string").slice(0, MAX_ITEMS) : [];
  } catch {
    return []; // unreadable or disabled storage: start with an empty list
  }
}

export class Watchlist {
  constructor() {
    this.items = load();
    this.listeners = new Set();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  has(symbol) {
    return this.items.includes(symbol);
  }

  position(symbol) {
    return this.items.indexOf(symbol);
  }

  get size() {
    return this.items.length;
  }

  toggle(symbol) {
    if (this.has(symbol)) this.items = this.items.filter((s) => s !== symbol);
    else if (this.items.length < MAX_ITEMS) this.items = [...this.items, symbol];
    this.save();
  }

  /** Move `symbol` by `delta` places (−1 up, +1 down), staying within the list. */
  move(symbol, delta) {
    const from = this.position(symbol);
    const to = from + delta;
    if (from < 0 || to < 0 || to >= this.items.length) return;
    const items = [...this.items];
    items.splice(to, 0, ...items.splice(from, 1));
    this.items = items;
    this.save();
  }

  save() {
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify(this.items));
    } catch {
      // Without storage the list lasts as long as the page.
    }
    for (const listener of this.listeners) listener();
  }
}
