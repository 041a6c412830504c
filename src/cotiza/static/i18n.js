// Every string the page shows comes from one dictionary per language (strings_es.js,
// strings_en.js). Spanish is the default; the choice is kept in localStorage so it survives
// reloads.

import { EN } from "./strings_en.js";
import { ES } from "./strings_es.js";

const STRINGS = { es: ES, en: EN };

const STORAGE_KEY = "cotiza.lang";
const LOCALES = { es: "es-AR", en: "en-US" };

function storedLang() {
  try {
    const value = localStorage.getItem(STORAGE_KEY);
    return value in STRINGS ? value : "es";
  } catch {
    return "es"; // storage can be disabled; the default language still works
  }
}

let current = storedLang();
const listeners = new Set();

export function lang() {
  return current;
}

export function locale() {
  return LOCALES[current];
}

/** The string for `key` in the current language, with `{name}` placeholders filled. */
export function t(key, vars) {
  const text = STRINGS[current][key] ?? STRINGS.es[key] ?? key;
  if (!vars) return text;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in vars ? String(vars[name]) : match));
}

/** Fill every element marked with data-i18n (text) or data-i18n-<attr> (an attribute). */
export function translate(root = document) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) {
    el.textContent = t(el.dataset.i18n);
  }
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const dataKey = `i18n${attr.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())}`;
    for (const el of root.querySelectorAll(`[data-i18n-${attr}]`)) {
      el.setAttribute(attr, t(el.dataset[dataKey]));
    }
  }
}

export function setLang(value) {
  if (!(value in STRINGS) || value === current) return;
  current = value;
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // Not persisted when storage is disabled; the switch still applies to this page.
  }
  translate();
  for (const listener of listeners) listener(value);
}

export function onLangChange(listener) {
  listeners.add(listener);
}
