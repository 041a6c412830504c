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
 * cell of a `column.flash` column flashes up or down when it changed. Returns the cell.
 */
export function updateColumn(row, column, value, flash) {
  const before = row.values[column.key];
  let direction = null;
  if (flash && column.flash && isNumber(before) && isNumber(value) && value !== before) {
    direction = value > before ? "up" : "down";
  }
  row.values[column.key] = value;
  const cell = row.cells[column.key];
  setCell(cell, column.format(value), direction);
  return cell;
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
