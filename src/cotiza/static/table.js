// What the three tables share: sortable headers (with a select for phones, where headers
// are hidden), a filter that matches what is displayed, and CSV export.

import { el } from "./dom.js";
import { isNumber } from "./format.js";
import { lang, t } from "./i18n.js";

const NEXT = { none: "ascending", ascending: "descending", descending: "none" };

/**
 * Sort state of one table. Header buttons carry `data-sort="key"`; a click cycles
 * ascending → descending → off; `select` (optional) offers the same choice on a phone.
 */
export class Sorter {
  constructor({ thead, select, onChange }) {
    this.thead = thead;
    this.select = select;
    this.onChange = onChange;
    this.key = null;
    this.direction = "none";
    for (const button of thead.querySelectorAll("button[data-sort]")) {
      button.addEventListener("click", () => {
        const key = button.dataset.sort;
        const direction = key === this.key ? NEXT[this.direction] : "ascending";
        this.set(direction === "none" ? null : key, direction);
      });
    }
    select?.addEventListener("change", () => {
      const [key, direction] = select.value.split(":");
      this.set(key || null, key ? direction : "none");
    });
    this.relabel();
  }

  set(key, direction) {
    this.key = key;
    this.direction = key ? direction : "none";
    this.mark();
    this.onChange();
  }

  mark() {
    for (const button of this.thead.querySelectorAll("button[data-sort]")) {
      const active = button.dataset.sort === this.key;
      button.closest("th").setAttribute("aria-sort", active ? this.direction : "none");
    }
    if (this.select) this.select.value = this.key ? `${this.key}:${this.direction}` : "";
  }

  /** Rebuild the phone select's options from the header texts (after a language change). */
  relabel() {
    if (!this.select) return;
    const options = [el("option", { value: "", text: t("sort.none") })];
    for (const button of this.thead.querySelectorAll("button[data-sort]")) {
      const name = button.textContent.trim();
      for (const direction of ["ascending", "descending"]) {
        options.push(
          el("option", {
            value: `${button.dataset.sort}:${direction}`,
            text: `${name} ${direction === "ascending" ? "↑" : "↓"}`,
          }),
        );
      }
    }
    this.select.replaceChildren(...options);
    this.mark();
  }

  /** Order `items` by `valueOf(item, key)`; nulls last either way; stable. */
  apply(items, valueOf) {
    if (!this.key) return items;
    const sign = this.direction === "descending" ? -1 : 1;
    const keyed = items.map((item, index) => ({ item, index, value: valueOf(item, this.key) }));
    keyed.sort((a, b) => {
      const aMissing = a.value === null || a.value === undefined || Number.isNaN(a.value);
      const bMissing = b.value === null || b.value === undefined || Number.isNaN(b.value);
      if (aMissing || bMissing) return aMissing === bMissing ? a.index - b.index : aMissing ? 1 : -1;
      const order =
        typeof a.value === "string"
          ? a.value.localeCompare(b.value, undefined, { numeric: true })
          : a.value - b.value;
      return order * sign || a.index - b.index;
    });
    return keyed.map((entry) => entry.item);
  }
}

/** Lower-case words of a filter box: every word must appear in the row's text. */
export function filterWords(query) {
  return String(query).toLowerCase().split(/\s+/).filter(Boolean);
}

export function matchesWords(text, words) {
  const haystack = text.toLowerCase();
  return words.every((word) => haystack.includes(word));
}

// ---------------------------------------------------------------------------------- CSV

/**
 * CSV in the page's language, so a spreadsheet opens it as numbers: Spanish uses ";"
 * between fields and a decimal comma, English "," and a decimal point. Numbers are
 * written in full (no thousands separators), times as ISO 8601 with the market's offset.
 */
export function csvText(header, rows) {
  const separator = lang() === "es" ? ";" : ",";
  const decimal = lang() === "es" ? "," : ".";
  const cell = (value) => {
    if (value === null || value === undefined) return "";
    let text = isNumber(value) ? String(value) : String(value);
    if (isNumber(value) && decimal !== ".") text = text.replace(".", decimal);
    return /[";,\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const lines = [header, ...rows].map((row) => row.map(cell).join(separator));
  return `${lines.join("\r\n")}\r\n`;
}

/** Offer `content` as a file download named `name`. */
export function download(name, content, type = "text/csv;charset=utf-8") {
  // The byte-order mark makes spreadsheets read the file as UTF-8 (accents, "—").
  const blob = content instanceof Blob ? content : new Blob(["\ufeff", content], { type });
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** "cotiza-cotizaciones-2026-11-30-1704.csv", stamped with the market-zone time. */
export function fileStamp(isoTime) {
  return isoTime.slice(0, 16).replace("T", "-").replace(":", "");
}
