// Small DOM helpers shared by the panels.

import { isNumber } from "./format.js";
import { t } from "./i18n.js";

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

/** Set a cell's text, touching the DOM only when it changed. */
export function setCell(cell, text) {
  if (cell.textContent !== text) cell.textContent = text;
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
    direction = value > before ? "up" : "down";
  }
  row.values[column.key] = value;
  const cell = row.cells[column.key];
  setCell(cell, column.format(value));
  if (direction) gate.light(cell, direction);
  return cell;
}

/** Above the flash rate, live tables are redrawn this often (about 8 times a second). */
const FAST_REDRAW_MS = 125;

/**
 * Flashes changed cells: a cell is lit (`data-flash="up"|"down"`) and put out again after
 * `flashMs` by one shared timer, two style changes per flash instead of an animation that
 * repaints every frame. Above `maxRate` updates a second the flashes stop altogether (at
 * hundreds of ticks a second they are unreadable and would cost most of the page's time),
 * and one cell lights at most once per `cellGapMs`.
 */
export class FlashGate {
  constructor({ maxRate = 60, cellGapMs = 900, flashMs = 600, now = () => performance.now() } = {}) {
    this.flashMs = flashMs;
    this.lit = new Map(); // cell -> time to put it out
    this.sweeper = null;
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

  /** Milliseconds between redraws of live tables: every frame, unless the feed is fast. */
  redrawInterval() {
    return this.enabled ? 0 : FAST_REDRAW_MS;
  }

  /** Light `cell` in `direction` when the rate and the cell's last flash allow it. */
  light(cell, direction) {
    if (!this.enabled) return;
    const now = this.now();
    const last = this.lastFlash.get(cell);
    if (last !== undefined && now - last < this.cellGapMs) return;
    this.lastFlash.set(cell, now);
    cell.dataset.flash = direction;
    this.lit.set(cell, now + this.flashMs);
    this.sweeper ??= setInterval(() => this.sweep(), Math.max(50, this.flashMs / 4));
  }

  sweep() {
    const now = this.now();
    for (const [cell, until] of this.lit) {
      if (until > now) continue;
      delete cell.dataset.flash;
      this.lit.delete(cell);
    }
    if (this.lit.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}

/**
 * Collect updates and apply them once per animation frame (paused in hidden tabs), and no
 * more often than every `interval()` milliseconds: a fast feed is drawn a few times a
 * second, which is as fast as anyone reads, instead of on every frame.
 */
export class FrameBatch {
  constructor(apply, { interval = () => 0 } = {}) {
    this.apply = apply;
    this.interval = interval;
    this.pending = new Set();
    this.scheduled = false;
    this.lastApply = 0;
  }

  add(key) {
    this.pending.add(key);
    if (this.scheduled) return;
    this.scheduled = true;
    const wait = this.lastApply + this.interval() - performance.now();
    const frame = () =>
      requestAnimationFrame(() => {
        this.scheduled = false;
        this.lastApply = performance.now();
        const keys = this.pending;
        this.pending = new Set();
        this.apply(keys);
      });
    if (wait > 0) setTimeout(frame, wait);
    else frame();
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
    // A 204 has no body, whatever its content type says.
    const body = type.includes("json") && response.status !== 204 ? await response.json() : null;
    return { ok: response.ok, status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ask in the page's modal confirmation dialog; resolves true on "yes". The "no" button has
 * the focus, so Enter or Escape never confirm by accident.
 */
export function askConfirm(dialog, { text, yes, no }) {
  byTestId("confirm-text", dialog).textContent = text;
  byTestId("confirm-yes", dialog).textContent = yes;
  byTestId("confirm-no", dialog).textContent = no;
  return new Promise((resolve) => {
    const done = () => {
      dialog.removeEventListener("close", done);
      resolve(dialog.returnValue === "yes");
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    dialog.showModal();
    byTestId("confirm-no", dialog).focus();
  });
}

/** A one-line result under a form or a row of buttons, in the page's language: `show()`
 * keeps the message key so `render()` can say it again after a language change. */
export class MessageLine {
  constructor(node) {
    this.node = node;
    this.message = null; // [key, vars, isError]
  }

  show(key, vars = {}, isError = false) {
    this.message = [key, vars, isError];
    this.render();
  }

  clear() {
    this.message = null;
    this.render();
  }

  render() {
    const [key, vars, isError] = this.message ?? ["", {}, false];
    this.node.textContent = key ? t(key, vars) : "";
    this.node.classList.toggle("error", isError);
  }
}
