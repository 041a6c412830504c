// The API token: where it is kept, how it is checked, and the forms that ask for it. A
// token is checked with the service at once (GET /api/auth/check) and saved only when
// valid: for this tab (sessionStorage), or on this computer when the user ticks
// "recordar en este equipo" (localStorage).

import { byTestId, fetchJson } from "./dom.js";
import { t } from "./i18n.js";

const TOKEN_KEY = "cotiza.token";

function storage(kind) {
  try {
    return kind === "local" ? localStorage : sessionStorage;
  } catch {
    return null; // storage disabled: the token lives only in this page
  }
}

export class TokenStore {
  constructor() {
    this.memory = "";
  }

  get() {
    try {
      return storage("session")?.getItem(TOKEN_KEY) || storage("local")?.getItem(TOKEN_KEY) || this.memory;
    } catch {
      return this.memory;
    }
  }

  remembered() {
    try {
      return Boolean(storage("local")?.getItem(TOKEN_KEY));
    } catch {
      return false;
    }
  }

  save(token, remember) {
    this.memory = token;
    try {
      storage(remember ? "local" : "session")?.setItem(TOKEN_KEY, token);
      storage(remember ? "session" : "local")?.removeItem(TOKEN_KEY);
    } catch {
      // Kept in memory only.
    }
  }

  clear() {
    this.memory = "";
    try {
      storage("session")?.removeItem(TOKEN_KEY);
      storage("local")?.removeItem(TOKEN_KEY);
    } catch {
      // Nothing stored.
    }
  }
}

/** "valid", "invalid" or "unreachable" for `token` (empty: is a token needed at all?). */
export async function checkToken(token) {
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const result = await fetchJson("/api/auth/check", { headers, timeout: 5000 });
    if (result.ok) return "valid";
    return result.status === 401 ? "invalid" : "unreachable";
  } catch {
    return "unreachable";
  }
}

/**
 * A token form (input, "remember" box, submit, a ✓/✗ mark): it checks the token with the
 * service and calls `onValid(token, remember)` only when the service accepts it.
 */
export class TokenForm {
  constructor({ form, prefix, onValid }) {
    this.form = form;
    this.input = byTestId(`${prefix}-input`, form);
    this.remember = byTestId(`${prefix}-remember`, form);
    this.mark = byTestId(`${prefix}-check`, form);
    this.submit = byTestId(`${prefix}-save`, form);
    this.onValid = onValid;
    this.result = null; // [state, key]
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.verify();
    });
  }

  async verify() {
    const token = this.input.value.trim();
    if (!token) {
      this.show("invalid", "auth.empty");
      this.input.focus();
      return;
    }
    this.submit.disabled = true;
    this.show("checking", "auth.checking");
    const verdict = await checkToken(token);
    this.submit.disabled = false;
    if (verdict === "valid") {
      this.input.value = "";
      this.show("valid", "auth.valid");
      this.onValid(token, Boolean(this.remember?.checked));
    } else if (verdict === "invalid") {
      this.show("invalid", "auth.invalid");
      this.input.select();
    } else {
      this.show("invalid", "auth.unreachable");
    }
  }

  show(state, key) {
    this.result = [state, key];
    this.render();
  }

  render() {
    const [state, key] = this.result ?? ["", ""];
    this.mark.dataset.state = state;
    const symbol = state === "valid" ? "✓ " : state === "invalid" ? "✗ " : "";
    this.mark.textContent = key ? `${symbol}${t(key)}` : "";
    this.input.setAttribute("aria-invalid", String(state === "invalid"));
  }

  relabel() {
    this.render();
  }
}

/** The prompt shown in place of the market tables while the service wants a token. */
export class AuthPrompt {
  constructor({ root, onValid }) {
    this.root = root;
    this.form = new TokenForm({ form: byTestId("auth-form", root), prefix: "auth", onValid });
    this.shown = false;
  }

  show() {
    if (this.shown) return;
    this.shown = true;
    this.root.hidden = false;
    document.body.dataset.auth = "required";
    this.form.input.focus();
  }

  hide() {
    this.shown = false;
    this.root.hidden = true;
    document.body.dataset.auth = "ok";
  }

  relabel() {
    this.form.relabel();
  }
}
