// Feed control: start, stop, restart. Shown only once a token was entered; the token is
// kept in sessionStorage, so it is forgotten when the tab closes.

import { byTestId, fetchJson } from "./dom.js";
import { t } from "./i18n.js";

const TOKEN_KEY = "cotiza.token";

export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Without storage the token lives only in this page.
  }
}

const ACTIONS = { start: "iniciar", stop: "detener", restart: "reiniciar" };

export class FeedControls {
  constructor({ root, onToken, onAction }) {
    this.root = root;
    this.onToken = onToken;
    this.onAction = onAction;
    this.form = byTestId("token-form", root);
    this.input = byTestId("token-input", root);
    this.forget = byTestId("token-forget", root);
    this.buttons = byTestId("feed-buttons", root);
    this.hint = byTestId("controls-hint", root);
    this.result = byTestId("control-result", root);
    this.token = storedToken();
    this.message = null; // [key, vars, isError]
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.setToken(this.input.value.trim());
    });
    this.forget.addEventListener("click", () => this.setToken(""));
    for (const [action, path] of Object.entries(ACTIONS)) {
      byTestId(`feed-${action}`, root).addEventListener("click", () => this.run(path));
    }
    this.render();
  }

  setToken(token) {
    this.token = token;
    this.input.value = "";
    this.message = null;
    storeToken(token);
    this.render();
    this.onToken(token);
  }

  async run(path) {
    this.setBusy(true);
    this.show("controls.working");
    try {
      const result = await fetchJson(`/cotizaciones/${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${this.token}` },
        timeout: 20000,
      });
      if (result.ok) this.show("controls.done", { message: result.body?.message ?? "ok" });
      else if (result.status === 401) this.show("controls.unauthorized", {}, true);
      else this.show("controls.failed", { detail: result.body?.detail ?? result.status }, true);
    } catch {
      this.show("controls.failed", { detail: t("error.network") }, true);
    } finally {
      this.setBusy(false);
      this.onAction();
    }
  }

  setBusy(busy) {
    for (const button of this.buttons.querySelectorAll("button")) button.disabled = busy;
  }

  show(key, vars = {}, isError = false) {
    this.message = [key, vars, isError];
    this.renderMessage();
  }

  renderMessage() {
    const [key, vars, isError] = this.message ?? ["", {}, false];
    this.result.textContent = key ? t(key, vars) : "";
    this.result.classList.toggle("error", isError);
  }

  render() {
    const hasToken = this.token !== "";
    this.buttons.hidden = !hasToken;
    this.forget.hidden = !hasToken;
    this.hint.textContent = t(hasToken ? "controls.token_set" : "controls.hint");
    this.root.dataset.token = hasToken ? "set" : "none";
    this.renderMessage();
  }

  relabel() {
    this.render();
  }
}
