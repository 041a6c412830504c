// Small DOM helpers shared by the panels.

import { isNumber } from "./format.js";

/** Create an element: `el("td", { class: "num", dataset: { col: "bid" } }, "text", child)`. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function byTestId(id, root = document) {
  return root.querySelector(`[data-testid="${id}"]`);
}

/**
 * Set a cell's text; when `flash` is "up" or "down", briefly highlight it. Two identical
 * animations are alternated so that a second change restarts the highlight.
 */
export function setCell(cell, text, flash = null) {
  if (cell.textContent === text) return;
  cell.textContent = text;
  if (flash) {
    const previous = cell.dataset.flash ?? "";
    cell.dataset.flash = `${flash}${previous.endsWith("1") ? "2" : "1"}`;
  }
}

/**
 * Update one column of a table row (`row.values`, `row.cells`) from `value`; a numeric
 * cell of a `column.flash` column flashes up or down when it changed and `gate` (a
 * FlashGate, or false) allows it. Returns the cell.
 */
export function updateColumn(row, column, value, gate) {
  const before = row.values[column.key];
  let direction = null;
  if (gate && column.flash && isNumber(before) && isNumber(value) && value !== before) {
    if (gate.allow(row.cells[column.key])) direction = value > before ? "up" : "down";
  }
  row.values[column.key] = value;
  const cell = row.cells[column.key];
  setCell(cell, column.format(value), direction);
  return cell;
}

/**
 * Decides whether a changed cell may flash. Above `maxRate` updates a second the flashes
 * stop altogether (at hundreds of ticks a second they are unreadable and cost most of the
 * page's time), and one cell flashes at most once per `cellGapMs`.
 */
export class FlashGate {
  constructor({ maxRate = 60, cellGapMs = 900, now = () => performance.now() } = {}) {
    this.maxRate = maxRate;
    this.cellGapMs = cellGapMs;
    this.now = now;
    this.windowStart = now();
    this.count = 0;
    this.rate = 0;
    this.lastFlash = new WeakMap();
  }

  /** Count one incoming update (a tick or a ratio), for the rate. */
  note() {
    this.count += 1;
    const now = this.now();
    const elapsed = now - this.windowStart;
    if (elapsed >= 1000) {
      this.rate = (this.count * 1000) / elapsed;
      this.count = 0;
      this.windowStart = now;
    }
  }

  get enabled() {
    return this.rate <= this.maxRate;
  }

  allow(cell) {
    if (!this.enabled) return false;
    const now = this.now();
    const last = this.lastFlash.get(cell);
    if (last !== undefined && now - last < this.cellGapMs) return false;
    this.lastFlash.set(cell, now);
    return true;
  }
}

/** Collect updates and apply them once per animation frame (paused in hidden tabs). */
export class FrameBatch {
  constructor(apply) {
    this.apply = apply;
    this.pending = new Set();
    this.scheduled = false;
  }

  add(key) {
    this.pending.add(key);
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      const keys = this.pending;
      this.pending = new Set();
      this.apply(keys);
    });
  }
}

/** A short text for screen readers only (the element is visually hidden). */
export function srOnly(text) {
  return el("span", { class: "sr-only", text });
}

/** Fetch JSON with a deadline; a JSON error body still resolves, with `ok` false. */
export async function fetchJson(url, { timeout = 8000, ...options } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeout);
  try {
    const response = await fetch(url, { ...options, signal: controller.signal });
    const type = response.headers.get("content-type") ?? "";
    const body = type.includes("json") ? await response.json() : null;
    return { ok: response.ok, status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}
